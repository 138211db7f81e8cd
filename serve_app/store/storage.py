"""Blob storage through fsspec: a local folder by default, S3 (s3fs) for real.

Blobs are content-addressed (`<prefix>/<sha256[:2]>/<sha256>`), so a write is idempotent and
a key never changes meaning. Writes are atomic for readers: locally a temporary file is renamed
into place; an S3 PUT is atomic by itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fsspec
from botocore.exceptions import BotoCoreError
from fsspec.implementations.local import LocalFileSystem

from serve_app.errors import NotFound


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def _unavailable_as_oserror() -> Iterator[None]:
    """botocore's connection errors are not OSErrors; callers treat OSError as "storage down"."""
    try:
        yield
    except BotoCoreError as exc:
        raise ConnectionError(f"storage unreachable: {exc}") from exc


class BlobStore:
    def __init__(self, url: str, *, s3_endpoint_url: str | None = None) -> None:
        options: dict[str, Any] = {}
        if url.startswith("s3://"):
            # Fail in seconds, not minutes, when the store is down: callers answer 503.
            options["config_kwargs"] = {
                "connect_timeout": 2,
                "read_timeout": 15,
                "retries": {"max_attempts": 2},
            }
            if s3_endpoint_url:
                options["client_kwargs"] = {"endpoint_url": s3_endpoint_url}
        self.url = url
        self.fs, root = fsspec.url_to_fs(url, **options)
        self.root = root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)
        if self.local:
            os.makedirs(self.root, exist_ok=True)

    def key_for(self, sha256: str, kind: str = "images") -> str:
        return f"{kind}/{sha256[:2]}/{sha256}"

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            with _unavailable_as_oserror():
                self.fs.pipe_file(path, data)

    def get(self, key: str) -> bytes:
        try:
            with _unavailable_as_oserror():
                data: bytes = self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise NotFound("the stored image is missing", field="image_id") from None
        return data

    def exists(self, key: str) -> bool:
        with _unavailable_as_oserror():
            return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError), _unavailable_as_oserror():
            self.fs.rm_file(self._path(key))

    def ping(self) -> None:
        """Raises when the store cannot be reached (used by readiness)."""
        if self.local:
            if not os.path.isdir(self.root):
                raise FileNotFoundError(self.root)
        else:
            with _unavailable_as_oserror():
                self.fs.ls(self.root.split("/")[0], refresh=True)


# For other readers of fsspec stores (serve_app/sources/store.py).
unavailable_as_oserror = _unavailable_as_oserror
