"""The bottom layer: settings, vocabulary, database, object store and sign-in. Imports nothing else of the project."""
