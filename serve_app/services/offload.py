"""Blocking calls to a dependency (database, storage, Redis), run off the event loop through
the dependency's circuit breaker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from pipelines.errors import ServiceError
from serve_app.errors import Unavailable
from serve_app.guards.breakers import BreakerOpen, guarded

log = logging.getLogger("ray.serve")
T = TypeVar("T")


async def offload(what: str, fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call to a dependency off the event loop, through its circuit breaker:
    an outage becomes a 503, and while the breaker is open one that costs no waiting."""
    try:
        return await asyncio.to_thread(guarded, what, fn, *args)
    except ServiceError:
        raise
    except BreakerOpen as exc:
        raise Unavailable(
            f"the {what} is unavailable; try again shortly", retry_after=exc.retry_after
        ) from None
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("%s unavailable: %r", what, exc)
        raise Unavailable(f"the {what} is unavailable; try again shortly") from None
