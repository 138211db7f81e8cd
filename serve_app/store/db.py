"""Metadata in SQL through SQLAlchemy: SQLite by default, PostgreSQL (psycopg 3) for real.

The schema is owned by Alembic (serve_app/store/migrations); `Database.migrate()` brings a
database to the newest revision and is safe to call from every replica at start: PostgreSQL
serialises it with an advisory lock, SQLite with a file lock beside the database file.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, delete, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from serve_app.store.models import ImageRecord, new_id

__all__ = ["Database", "ImageRecord", "alembic_config", "new_id"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Revision of the schema that create_all() made before migrations existed (images only).
BASELINE_REVISION = "0001"
_PG_MIGRATION_LOCK = 7_310_420_001  # any constant, the same in every replica


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets several ingress replicas read while one writes.
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic's configuration built in code: no alembic.ini to keep in step with settings."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
                try:
                    yield conn
                finally:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    conn.commit()
                return
            path = self.engine.url.database
            if not path or path == ":memory:":
                yield conn
                return
            with open(f"{path}.migrate.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield conn
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def migrate(self, revision: str = "head") -> None:
        """Upgrade (or downgrade) to `revision`. A database made by create_all() before
        Alembic (an `images` table, no version table) is first stamped at the baseline it
        already matches."""
        with self._migration_lock() as conn:
            tables = set(inspect(conn).get_table_names())
            config = alembic_config(conn)
            if "images" in tables and "alembic_version" not in tables:
                command.stamp(config, BASELINE_REVISION)
            current = MigrationContext.configure(conn).get_current_revision()
            below: set[str] = set()
            if current:
                scripts = ScriptDirectory.from_config(config).walk_revisions("base", current)
                below = {script.revision for script in scripts}
            if revision not in ("head", current) and revision in below:
                command.downgrade(config, revision)
            else:
                command.upgrade(config, revision)
            conn.commit()

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def create_schema(self) -> None:
        """The schema a service needs, at start: the newest migration."""
        self.migrate()

    def session(self) -> Session:
        return self.sessions()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def add(self, record: ImageRecord) -> ImageRecord:
        with self.session() as session, session.begin():
            session.add(record)
        return record

    def get_image(self, image_id: str) -> ImageRecord | None:
        with self.session() as session:
            return session.get(ImageRecord, image_id)

    def delete_images(self, image_ids: list[str]) -> None:
        """Delete image rows (a refused batch's uploads); their blobs, pinned when written,
        go to the sweeper's `blobs.collect` once no row names them."""
        with self.session() as session, session.begin():
            session.execute(delete(ImageRecord).where(ImageRecord.id.in_(image_ids)))
