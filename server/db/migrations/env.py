"""Alembic's entry point: runs the migrations on the connection server/db/migrate.py passes in
`config.attributes["connection"]`, inside that connection's transaction (the caller commits)."""

from __future__ import annotations

from alembic import context

from server.db.migrate import include_name, target_metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("alertsleuth's migrations run on a connection: see server/db/migrate.py upgrade()")

context.configure(
    connection=connection,
    target_metadata=target_metadata(connection.dialect.name),
    include_name=include_name(connection.dialect.name),
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
