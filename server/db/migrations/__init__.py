"""The schema's migrations, run by server/db/migrate.py: `env.py` (Alembic's entry point, on the
connection it is given), `versions/` (one module per revision) and `release_0_1.py` (the frozen schema
of the last release before migrations).

A new revision: change server/db/models.py, then add `versions/NNNN_what.py` with `down_revision` the
previous head, written by hand or drafted by Alembic's autogenerate (`alembic.command.revision` with
`server.db.migrate.config(conn)` and `autogenerate=True`); `tests/server/test_migrations.py` fails until
the head matches the models on both backends.
"""
