"""The job store's database: SQLite by default (a file, WAL mode), PostgreSQL when replicas share jobs,
migrated to the newest schema by Alembic at start-up."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 7_316_452  # a PostgreSQL advisory lock: replicas starting together migrate one at a time


def utcnow() -> datetime:
    """Naive UTC: what every timestamp column holds, in SQLite and PostgreSQL alike."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_utc(moment: datetime | None) -> datetime | None:
    """A stored naive UTC time, marked as UTC for clients."""
    return None if moment is None else moment.replace(tzinfo=UTC)


def open_database(url: str) -> Engine:
    """An engine for the URL, its schema migrated to the newest revision."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        serialise_sqlite_writers(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return engine


def serialise_sqlite_writers(engine: Engine) -> None:
    """WAL, so readers never wait; every transaction BEGIN IMMEDIATE, so two claims never interleave."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
