"""How fetching a source fails, as the client sees it (thumbor's statuses)."""

from __future__ import annotations

from pipelines.errors import ServiceError, TooLarge


class SourceNotFound(ServiceError):
    status = 404
    code = "source_not_found"


class SourceRefused(ServiceError):
    """The source's address is internal (SSRF), or its host is not on the allow-list."""

    status = 403
    code = "source_address"


class SourceUnreachable(ServiceError):
    """The remote source could not be fetched: no connection, a bad status, a bad answer."""

    status = 502
    code = "source_unreachable"


class SourceTimeout(ServiceError):
    status = 504
    code = "source_timeout"


def too_large(limit: int) -> TooLarge:
    return TooLarge(f"the source is larger than {limit} bytes", code="source_too_large")
