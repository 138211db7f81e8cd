"""Per-test stores on the real services (tests/conftest.py starts and checks them): a fresh
bucket, a private PostgreSQL schema, and both stacks as one `backend` fixture."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from serve_app.store.db import Database
from serve_app.store.models import ImageRecord, new_id
from serve_app.store.storage import BlobStore
from tests.conftest import private_schema


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; moto accepts any credentials, botocore only needs some to sign."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    name = f"bucket-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def postgres_url(postgres_admin: Engine) -> Iterator[str]:
    """A private schema in the machine's PostgreSQL for one test, dropped after it."""
    with private_schema(postgres_admin) as url:
        yield url


@dataclass
class Backend:
    """The metadata database and blob store a service runs on, migrated and empty."""

    name: str
    db: Database
    store: BlobStore


@pytest.fixture(params=["sqlite+local", "postgresql+s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Both stacks the issue names: the embedded default and the real services."""
    if request.param == "sqlite+local":
        db = Database(f"sqlite:///{tmp_path}/metadata.db")
        store = BlobStore(f"file://{tmp_path}/blobs")
    else:
        db = Database(request.getfixturevalue("postgres_url"))
        bucket = request.getfixturevalue("s3_bucket")
        store = BlobStore(
            f"s3://{bucket}/blobs", s3_endpoint_url=request.getfixturevalue("moto_endpoint")
        )
    db.migrate()
    yield Backend(request.param, db, store)
    db.engine.dispose()


def stored_images(backend: Backend, count: int) -> list[str]:
    """`count` upload rows (no blobs): sources for tasks made straight in the task store."""
    ids = []
    for _ in range(count):
        sha = new_id() * 2
        record = ImageRecord(
            id=new_id(), kind="upload", sha256=sha, blob_key=f"images/{sha[:2]}/{sha}",
            format="png", media_type="image/png", width=1, height=1, bytes=1,
        )  # fmt: skip
        ids.append(backend.db.add(record).id)
    return ids
