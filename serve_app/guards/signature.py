"""URL signatures, thumbor's scheme: HMAC-SHA1 under a secret key of the path after the
signature segment, URL-safe base64 (28 characters). URLs made by libthumbor's `CryptoURL` or
thumbor's own signer verify here unchanged.

Several keys may be configured (URL_SIGNING_KEYS): a URL signed with any of them is accepted,
so a key can be rotated in (first in the list: new URLs use it) and retired later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from urllib.parse import unquote

from serve_app.errors import Forbidden

# thumbor signatures are 28 URL-safe base64 characters (20 bytes + one '=' of padding).
_SIGNATURE = re.compile(r"^[A-Za-z0-9_-]{27}=?$")
# First path segments that belong to the service's own routes, never to an image URL.
RESERVED = frozenset(
    {"api", "health", "metrics", "docs", "redoc", "openapi.json", "playground", "favicon.ico"}
)


def signature(key: str | bytes, path: str) -> str:
    """The signature of `path` (the part after the signature segment) under `key`."""
    secret = key.encode() if isinstance(key, str) else key
    digest = hmac.new(secret, path.encode("utf-8"), hashlib.sha1).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def looks_like_image_url(path: str) -> bool:
    """Whether a request path is one for the URL API (`/unsafe/...` or `/<signature>/...`):
    the guard lets these through without an API key (the signature is their authorisation,
    and an unsafe URL is refused by the route unless URL_ALLOW_UNSAFE)."""
    head, sep, rest = path.lstrip("/").partition("/")
    if not sep or not rest or head in RESERVED:
        return False
    return head == "unsafe" or _SIGNATURE.match(unquote(head)) is not None


class UrlSigner:
    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = [key.encode() for key in keys]

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def sign(self, path: str) -> str:
        """`/<signature>/<path>` with the first (newest) key."""
        if not self._keys:
            raise ValueError("no URL signing key is configured (URL_SIGNING_KEYS)")
        path = path.lstrip("/")
        return f"/{signature(self._keys[0], path)}/{path}"

    def valid(self, given: str, signed: Sequence[str]) -> bool:
        """Whether `given` signs any of the `signed` texts under any key (the path as it
        arrived and as decoded: a client may have percent-encoded what it signed plain)."""
        ok = False
        for key in self._keys:
            for text in dict.fromkeys(signed):
                # Every comparison runs (no early exit) and each in constant time.
                ok |= hmac.compare_digest(signature(key, text), given)
        return ok

    def check(self, given: str, signed: Sequence[str]) -> None:
        """Raises 403 unless `given` is a valid signature."""
        if not self._keys:
            raise Forbidden(
                "signed URLs are not accepted: no signing key is configured", code="bad_signature"
            )
        if not self.valid(given, signed):
            raise Forbidden("the URL's signature does not match", code="bad_signature")
