"""Alembic environment: runs the versions/ scripts against the URL `db.upgrade` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from nlp_transfer.service.db import make_engine

url = context.config.get_main_option("sqlalchemy.url")
engine = make_engine(url)
with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        # two servers starting on one database: the second waits, then finds the schema at head
        connection.execute(text("SELECT pg_advisory_xact_lock(7216016)"))
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
engine.dispose()
