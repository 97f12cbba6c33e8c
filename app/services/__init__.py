"""What the pages and the API do, over labeling, models and app.core: the visitor\x27s analysis, submissions, retention, the reference gallery, result cards, the sample project and bootstrap."""
