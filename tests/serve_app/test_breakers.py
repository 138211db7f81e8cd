"""Circuit breakers with the real dependencies stopped and started again (our own instances:
a PostgreSQL, a moto S3 server): failures open the breaker, an open breaker answers 503 with
Retry-After at once without touching the dependency, and it closes by itself once the
dependency is back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from serve_app.errors import Unavailable
from serve_app.guards import breakers
from serve_app.services.offload import offload
from serve_app.settings import BreakerSettings
from serve_app.store.db import Database
from serve_app.store.storage import BlobStore
from tests.conftest import OwnServer

FAIL_MAX, RESET_S = 3, 1.0


@pytest.fixture(autouse=True)
def quick_breakers() -> Iterator[None]:
    breakers.reset_all()
    for name in ("database", "storage"):
        breakers.breaker(name, BreakerSettings(fail_max=FAIL_MAX, reset_s=RESET_S))
    yield
    breakers.reset_all()


async def _outage_and_recovery(
    name: str, call: Callable[[], Any], server: OwnServer, after_restart: Callable[[], None]
) -> None:
    await offload(name, call)
    assert breakers.states()[name] == "closed"
    server.stop()
    for _ in range(FAIL_MAX):
        with pytest.raises(Unavailable):
            await offload(name, call)
    assert breakers.states()[name] == "open"
    calls = 0

    def counted() -> Any:
        nonlocal calls
        calls += 1
        return call()

    started = time.monotonic()
    with pytest.raises(Unavailable) as fast:
        await offload(name, counted)
    assert time.monotonic() - started < 0.2 and calls == 0  # refused without trying
    assert fast.value.retry_after == RESET_S
    server.start()
    after_restart()
    time.sleep(RESET_S + 0.1)
    await offload(name, call)  # the trial call succeeds: closed again
    assert breakers.states()[name] == "closed"


async def test_database_breaker(own_postgres: OwnServer) -> None:
    db = Database(own_postgres.url)
    await _outage_and_recovery("database", db.ping, own_postgres, lambda: None)


async def test_storage_breaker(own_moto: OwnServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)

    def bucket() -> None:
        boto3.client("s3", endpoint_url=own_moto.url).create_bucket(Bucket="breaker-test")

    bucket()
    store = BlobStore("s3://breaker-test/blobs", s3_endpoint_url=own_moto.url)
    await _outage_and_recovery("storage", store.ping, own_moto, bucket)


def test_calls_through_one_breaker_run_at_once() -> None:
    """pybreaker's own call() holds the breaker's lock for the whole call: every call to a
    dependency ran one at a time, and a hung one held up the rest. Two calls must overlap."""
    import threading

    both_inside = threading.Barrier(2, timeout=5)

    def call() -> str:
        both_inside.wait()  # raises BrokenBarrierError if the other call cannot get in
        return "ok"

    with ThreadPoolExecutor(2) as pool:
        results = [pool.submit(breakers.guarded, "database", call) for _ in range(2)]
        assert [r.result(timeout=10) for r in results] == ["ok", "ok"]
    assert breakers.states()["database"] == "closed"


def test_failures_still_open_the_breaker_and_a_trial_closes_it() -> None:
    def broken() -> None:
        raise OSError("down")

    for _ in range(FAIL_MAX):
        with pytest.raises(OSError):
            breakers.guarded("storage", broken)
    assert breakers.states()["storage"] == "open"
    with pytest.raises(breakers.BreakerOpen):
        breakers.guarded("storage", lambda: "never called")
    time.sleep(RESET_S + 0.05)
    assert breakers.guarded("storage", lambda: "back") == "back"
    assert breakers.states()["storage"] == "closed"
