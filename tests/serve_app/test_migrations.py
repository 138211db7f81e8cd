"""Alembic owns the schema: the migrations build exactly what the models describe, on SQLite
and PostgreSQL, and a database made before migrations existed is adopted, not broken."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, inspect, text

from serve_app.settings import PROJECT_ROOT
from serve_app.store.db import Database
from serve_app.store.models import Base

TABLES = {"images", "results", "tasks", "task_items", "blobs", "alembic_version"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/metadata.db"
    value: str = request.getfixturevalue("postgres_url")
    return value


def test_migrations_build_what_the_models_describe(url: str) -> None:
    db = Database(url)
    db.migrate()
    db.migrate()  # every replica runs it at start: the second is a no-op
    with db.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_downgrade_and_upgrade_again(url: str) -> None:
    db = Database(url)
    db.migrate()
    db.migrate("0001")
    with db.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"images", "alembic_version"}
    db.migrate()
    with db.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES


def test_a_database_from_before_migrations_is_adopted(url: str) -> None:
    """The foundation release made `images` with create_all(); its rows must survive."""
    db = Database(url)
    legacy = MetaData()
    # The table as create_all() made it then: today's columns less those migrations added.
    added_later = {"owner"}
    columns = []
    for column in Base.metadata.tables["images"].columns:
        if column.name not in added_later:
            columns.append(copied := column._copy())
            copied.index = column.name == "sha256"  # the only index it had
    Table("images", legacy, *columns)
    legacy.create_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO images (id, kind, sha256, blob_key, format, media_type, width,"
                " height, bytes, created_at) VALUES ('old', 'upload', :sha, 'k', 'png',"
                " 'image/png', 1, 1, 1, CURRENT_TIMESTAMP)"
            ),
            {"sha": "0" * 64},
        )
    db.migrate()
    assert db.get_image("old") is not None
    with db.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES


def test_make_db_migrate_command(tmp_path: Path) -> None:
    """`make db-migrate` runs this module against DATABASE_URL."""
    url = f"sqlite:///{tmp_path}/cli.db"
    env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-m", "serve_app.cli.migrate"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    with Database(url).engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= TABLES
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == "0004"
