"""The source store: images under a folder or a bucket prefix (SOURCE_URL: file:///path or
s3://bucket/prefix, with S3_ENDPOINT_URL), read through fsspec as blob storage is, as
thumbor's file and S3 loaders read them. Keys are relative: a leading '/' is dropped and
'.', '..', backslashes and NUL never reach the filesystem, so nothing outside the root can be
named."""

from __future__ import annotations

from serve_app.sources.errors import SourceNotFound, too_large
from serve_app.store.storage import BlobStore, unavailable_as_oserror


def safe_key(key: str) -> str:
    """`key` as a path relative to the root, or SourceNotFound when it tries to leave it."""
    if "\x00" in key or "\\" in key:
        raise SourceNotFound("no such source image")
    parts = [part for part in key.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise SourceNotFound("no such source image")
    return "/".join(parts)


class SourceStore:
    def __init__(self, url: str, *, s3_endpoint_url: str | None = None, max_bytes: int) -> None:
        self.blobs = BlobStore(url, s3_endpoint_url=s3_endpoint_url)
        self.loader = "file" if self.blobs.local else "s3"
        self.max_bytes = max_bytes

    def get(self, key: str) -> bytes:
        """Blocking: run it off the event loop. Reads at most one byte past the limit, so an
        oversized object costs no more than the limit to refuse."""
        path = f"{self.blobs.root}/{safe_key(key)}"
        try:
            with unavailable_as_oserror():
                data: bytes = self.blobs.fs.cat_file(path, start=0, end=self.max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise SourceNotFound("no such source image", field="image") from None
        if len(data) > self.max_bytes:
            raise too_large(self.max_bytes)
        return data

    def put(self, key: str, data: bytes) -> None:
        self.blobs.put(safe_key(key), data)
