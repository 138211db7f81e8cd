"""The metadata store on SQLite (the embedded default) and on PostgreSQL (psycopg 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from serve_app.store.db import Database, ImageRecord, new_id


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/nested/metadata.db"
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    database.create_schema()
    database.create_schema()  # idempotent at every start
    return database


def record(sha: str = "a" * 64, **overrides: object) -> ImageRecord:
    fields: dict[str, object] = {
        "id": new_id(),
        "kind": "upload",
        "sha256": sha,
        "blob_key": f"images/{sha[:2]}/{sha}",
        "format": "jpeg",
        "media_type": "image/jpeg",
        "width": 640,
        "height": 480,
        "bytes": 12345,
    }
    fields.update(overrides)
    return ImageRecord(**fields)


def test_add_and_get(db: Database) -> None:
    db.ping()
    upload = db.add(record())
    result = db.add(record("b" * 64, kind="result", source_id=upload.id, pipeline='{"steps":[]}'))
    got = db.get_image(result.id)
    assert got is not None
    assert (got.kind, got.source_id, got.width, got.pipeline) == (
        "result",
        upload.id,
        640,
        '{"steps":[]}',
    )
    assert got.created_at.tzinfo is not None or db.engine.dialect.name == "sqlite"
    assert db.get_image("missing") is None


def test_result_must_point_at_an_existing_source(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        db.add(record(kind="result", source_id="no-such-image"))


def test_unreachable_database_raises_operational_error() -> None:
    dead = Database("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(OperationalError):
        dead.ping()
