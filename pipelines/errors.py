"""Typed errors that carry an HTTP status and a public message.

Raised anywhere below the ingress; one exception handler in serve_app maps them to the shared
JSON error body. Messages are written for clients: never put internal details in them.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base error: `status` is the HTTP status, `code` a stable machine-readable name."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross process boundaries (Ray handles): keep keyword-only args when pickled.
        return (_rebuild, (type(self), self.message, self.code, self.field))

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "field": self.field}


def _rebuild(cls: type[ServiceError], message: str, code: str, field: str | None) -> ServiceError:
    return cls(message, code=code, field=field)


class BadImage(ServiceError):
    """Empty, garbage or truncated image data."""

    status = 400
    code = "bad_image"


class UnsupportedFormat(ServiceError):
    """Not an image, or a format this service does not accept."""

    status = 415
    code = "unsupported_format"


class TooLarge(ServiceError):
    """Over a configured size limit (bytes, pixels, frames)."""

    status = 413
    code = "too_large"


class InvalidParameter(ServiceError):
    """A parameter is missing, out of range, or does not fit the image."""

    status = 422
    code = "invalid_parameter"


class DeadlineExceeded(ServiceError):
    """The pipeline ran past its deadline; checked between steps."""

    status = 504
    code = "deadline_exceeded"


class Overloaded(ServiceError):
    """More work is waiting than this replica takes on: shed now rather than queue without
    bound; the client retries after `retry_after` seconds."""

    status = 503
    code = "overloaded"
    retry_after = 1


class WorkerLost(ServiceError):
    """The process doing the work died under it (not a deadline: nothing ran out of time);
    it is replaced, and the client retries after `retry_after` seconds."""

    status = 503
    code = "worker_lost"
    retry_after = 1


class ModelUnavailable(ServiceError):
    """A model could not be loaded (or is still loading); the rest of the service works."""

    status = 503
    code = "model_unavailable"
