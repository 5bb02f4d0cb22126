"""The store: tables (SQLAlchemy 2.0 mappings and their alembic migrations), the database
connection, and the directory, mail store, calendar store, outbox and out-of-office state
built on them. Imports the core, nothing above it."""
