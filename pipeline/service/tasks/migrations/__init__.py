"""Alembic migrations of the tasks' database, applied by ``repository.migrate`` on start."""
