"""Alembic environment: the engine comes from app.db (never from alembic.ini)."""

from alembic import context
from sqlmodel import SQLModel

import app.core.db  # noqa: F401  (registers the tables on SQLModel.metadata)

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,  # ALTER TABLE through table copies on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
