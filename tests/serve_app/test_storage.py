"""BlobStore against a local folder and against moto's S3 server: same behaviour on both."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve_app.errors import NotFound
from serve_app.store.storage import BlobStore, sha256_hex


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(f"file://{tmp_path}/blobs")
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_endpoint")
    return BlobStore(f"s3://{bucket}/prefix", s3_endpoint_url=endpoint)


def test_round_trip_is_content_addressed(store: BlobStore) -> None:
    data = b"\x89PNG fake but bytes are bytes" * 100
    key = store.key_for(sha256_hex(data))
    assert key.endswith(sha256_hex(data)) and key.startswith("images/")
    assert not store.exists(key)
    store.put(key, data)
    assert store.exists(key)
    assert store.get(key) == data
    store.put(key, data)  # idempotent
    assert store.get(key) == data


def test_missing_blob_is_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFound) as error:
        store.get("images/00/" + "0" * 64)
    assert error.value.status == 404


def test_delete_and_ping(store: BlobStore) -> None:
    store.ping()
    store.put("images/ab/abc", b"x")
    store.delete("images/ab/abc")
    store.delete("images/ab/abc")  # deleting twice is fine
    assert not store.exists("images/ab/abc")


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = BlobStore(f"file://{tmp_path}/blobs")
    for i in range(5):
        store.put(f"images/aa/{i}", b"data" * 1000)
    names = [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert sorted(names) == [str(i) for i in range(5)]


def test_local_write_failing_midway_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(f"file://{tmp_path}/blobs")
    target = tmp_path / "blobs" / "images" / "bb" / "x"
    target.parent.mkdir(parents=True)
    target.mkdir()  # the final rename cannot replace a directory
    with pytest.raises(OSError):
        store.put("images/bb/x", b"payload")
    leftovers = [p for p in target.parent.iterdir() if p.name != "x"]
    assert leftovers == []


def test_s3_ping_fails_for_a_missing_bucket(moto_endpoint: str, s3_bucket: str) -> None:
    store = BlobStore("s3://no-such-bucket-here/p", s3_endpoint_url=moto_endpoint)
    with pytest.raises(FileNotFoundError):
        store.ping()


def test_unreachable_s3_is_a_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Callers map OSError to 503; botocore's own errors must arrive as one."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    from serve_app.cli.local import free_port

    dead = BlobStore("s3://bucket/p", s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectionError):
        dead.get("images/aa/x")
    with pytest.raises(ConnectionError):
        dead.put("images/aa/x", b"1")
    with pytest.raises(ConnectionError):
        dead.ping()
