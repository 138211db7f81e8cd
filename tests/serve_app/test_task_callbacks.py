"""Task webhooks (issue #17): the state machine on the task's row, on both stacks, and delivery
to a real receiver on 127.0.0.1 through the sources' SSRF protection.

No packet leaves 127.0.0.0/8: the receiver listens on 127.0.0.1, names are answered by the
HTTP source tests' stubbed resolver, and their connect hook (imported, autouse) fails the test
on any connection aimed outside loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from pipelines.errors import InvalidParameter
from serve_app.schemas import TaskOut
from serve_app.services.callbacks import CallbackSender, callback_client, check_callback_url, sign
from serve_app.settings import SourceSettings, TaskSettings
from serve_app.store.task_store import Lease, TaskStore
from tests.serve_app.conftest import Backend, stored_images
from tests.serve_app.test_http_source import LOOKUPS, only_loopback, stub_resolve

__all__ = ["only_loopback"]  # the connect hook, autouse here too

KEY = "test-callback-key"


def _task(backend: Backend, url: str | None = "http://127.0.0.1:9/hook") -> tuple[TaskStore, str]:
    store = TaskStore(backend.db)
    sources = stored_images(backend, 1)
    task, _ = store.create('{"steps": []}', sources, fingerprint="fp", callback_url=url)
    return store, task.id


# --- the state machine -------------------------------------------------------------------


def test_ending_a_task_makes_its_callback_pending_in_the_same_write(backend: Backend) -> None:
    store, with_url = _task(backend)
    _, without = _task(backend, None)
    assert store.due_callbacks(10) == []  # running tasks have nothing due
    store.fail(with_url, "broken")
    store.cancel(without)
    task = store.view(with_url).task  # type: ignore[union-attr]
    assert (task.status, task.callback_state, task.callback_attempts) == ("failed", "pending", 0)
    assert store.view(without).task.callback_state is None  # type: ignore[union-attr]
    assert store.due_callbacks(10) == [with_url]


def test_finish_and_cancel_make_it_pending_too(backend: Backend) -> None:
    store, finished = _task(backend)
    claimed = store.claim(finished, "runner-a", lease_s=60)
    assert claimed is not None
    lease = Lease.of(claimed)
    assert store.item_failed(finished, 0, lease, "bad", "no")
    assert store.finish(finished, lease) == "failed"
    _, cancelled = _task(backend)
    store.cancel(cancelled)
    assert sorted(store.due_callbacks(10)) == sorted([finished, cancelled])


def test_a_claim_is_exclusive_and_its_outcome_fenced(backend: Backend) -> None:
    store, task_id = _task(backend)
    store.cancel(task_id)
    first = store.claim_callback(task_id, lease_s=60)
    assert first == 1
    assert store.claim_callback(task_id, lease_s=60) is None  # another sender: not now
    assert store.due_callbacks(10) == []
    assert store.callback_delivered(task_id, first)
    assert store.claim_callback(task_id, lease_s=60) is None  # delivered: never again
    task = store.view(task_id).task  # type: ignore[union-attr]
    assert (task.callback_state, task.callback_attempts, task.callback_error) == (
        "delivered", 1, None,
    )  # fmt: skip


def test_a_lapsed_claim_is_taken_over_and_the_old_one_writes_nothing(backend: Backend) -> None:
    store, task_id = _task(backend)
    store.cancel(task_id)
    assert store.claim_callback(task_id, lease_s=0.05) == 1
    time.sleep(0.3)
    assert store.claim_callback(task_id, lease_s=60) == 2  # the first sender died
    assert not store.callback_delivered(task_id, 1)  # the first one's late answer: fenced off
    assert store.callback_delivered(task_id, 2)


def test_back_off_then_give_up_with_the_reason(backend: Backend) -> None:
    store, task_id = _task(backend)
    store.cancel(task_id)
    assert store.claim_callback(task_id, lease_s=60) == 1
    assert store.callback_retry(task_id, 1, "the callback answered 500", wait_s=60)
    assert store.due_callbacks(10) == [] and store.claim_callback(task_id, 60) is None
    task = store.view(task_id).task  # type: ignore[union-attr]
    assert (task.callback_state, task.callback_error) == ("pending", "the callback answered 500")
    assert store.callback_retry(task_id, 1, "again", wait_s=0) is True  # due at once now
    assert store.claim_callback(task_id, lease_s=60) == 2
    assert store.callback_failed(task_id, 2, "gave up")
    assert store.claim_callback(task_id, lease_s=60) is None
    task = store.view(task_id).task  # type: ignore[union-attr]
    assert (task.callback_state, task.callback_error) == ("failed", "gave up")


def test_the_task_json_shows_the_callback(backend: Backend) -> None:
    store, task_id = _task(backend)
    _, plain = _task(backend, None)
    out = TaskOut.of(store.view(task_id)).model_dump(mode="json")  # type: ignore[arg-type]
    assert out["callback"] == {
        "url": "http://127.0.0.1:9/hook", "state": None, "attempts": 0, "error": None,
    }  # fmt: skip
    assert TaskOut.of(store.view(plain)).model_dump()["callback"] is None  # type: ignore[arg-type]


# --- submit-time checks --------------------------------------------------------------------


def _tasks(**values: Any) -> TaskSettings:
    return TaskSettings.model_validate({"callback_key": KEY} | values)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/hook",  # private
        "http://169.254.169.254/latest",  # link-local (cloud metadata)
        "http://127.0.0.1/hook",  # loopback, refused by default
        "http://2130706433/hook",  # loopback, spelled as a number
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "http:///no-host",
        "",
        42,
    ],
)
def test_a_url_the_rules_refuse_is_422_on_callback_url(url: object) -> None:
    client = callback_client(_tasks(), SourceSettings())
    with pytest.raises(InvalidParameter) as refused:
        check_callback_url(url, _tasks(), client)
    assert refused.value.field == "callback_url"


def test_no_key_means_no_callbacks() -> None:
    client = callback_client(_tasks(), SourceSettings())
    with pytest.raises(InvalidParameter, match="TASKS_CALLBACK_KEY") as refused:
        check_callback_url("https://example.com/hook", _tasks(callback_key=""), client)
    assert refused.value.field == "callback_url"


def test_allowed_urls_and_the_callbacks_own_address_override() -> None:
    client = callback_client(_tasks(), SourceSettings())
    assert check_callback_url(" https://example.com/h?x=1 ", _tasks(), client) == (
        "https://example.com/h?x=1"
    )
    loopback = _tasks(callback_allow_loopback=True)
    assert check_callback_url(
        "http://127.0.0.1:8/h", loopback, callback_client(loopback, SourceSettings())
    )
    from_sources = callback_client(_tasks(), SourceSettings(http_allow_loopback=True))
    assert check_callback_url("http://127.0.0.1:8/h", _tasks(), from_sources)
    hosts = callback_client(_tasks(), SourceSettings(http_allowed_hosts=["hooks.example"]))
    with pytest.raises(InvalidParameter):
        check_callback_url("https://other.example/h", _tasks(), hosts)


# --- delivery to a real receiver -------------------------------------------------------


@dataclass
class Receiver:
    port: int
    status: int = 200
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/hook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    found = Receiver(port)

    async def hook(request: web.Request) -> web.Response:
        found.posts.append((dict(request.headers), await request.read()))
        return web.Response(status=found.status, text="thanks")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield found
    finally:
        await runner.cleanup()


def _sender(backend: Backend, **values: Any) -> CallbackSender:
    tasks = _tasks(callback_allow_loopback=True, callback_backoff_s=0, **values)
    client = callback_client(tasks, SourceSettings(http_timeout_s=2), resolve=stub_resolve)
    return CallbackSender(TaskStore(backend.db), tasks, client)


async def test_delivered_once_signed_with_the_task_json(
    backend: Backend, receiver: Receiver
) -> None:
    sender = _sender(backend)
    store, task_id = _task(backend, receiver.url())
    try:
        assert await sender.deliver(task_id) is None  # not ended: nothing due
        store.cancel(task_id)
        assert await sender.deliver_due() == 1
        assert await sender.deliver_due() == 0
        assert await sender.deliver(task_id) is None
    finally:
        await sender.close()
    assert len(receiver.posts) == 1
    headers, body = receiver.posts[0]
    expected = "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Signature"], expected)
    assert headers["X-Signature"] == sign(KEY, body)
    assert headers["Content-Type"] == "application/json" and headers["X-Task-Id"] == task_id
    sent = json.loads(body)
    view = store.view(task_id)
    assert view is not None
    now = TaskOut.of(view).model_dump(mode="json")
    # The task as GET answers it; only the callback's own state moved on since the POST.
    assert sent | {"callback": None} == now | {"callback": None}
    assert sent["status"] == "cancelled" and sent["callback"]["state"] == "pending"
    assert now["callback"] == {
        "url": receiver.url(), "state": "delivered", "attempts": 1, "error": None,
    }  # fmt: skip


async def test_a_failing_receiver_is_retried_then_given_up_with_the_reason(
    backend: Backend, receiver: Receiver
) -> None:
    receiver.status = 500
    sender = _sender(backend, callback_max_attempts=3)
    store, task_id = _task(backend, receiver.url())
    store.fail(task_id, "broken")
    try:
        assert [await sender.deliver(task_id) for _ in range(4)] == [
            "retry", "retry", "failed", None,
        ]  # fmt: skip
    finally:
        await sender.close()
    assert len(receiver.posts) == 3
    task = store.view(task_id).task  # type: ignore[union-attr]
    assert (task.callback_state, task.callback_attempts) == ("failed", 3)
    assert task.callback_error == "gave up after 3 attempts: the callback answered 500"


def test_back_off_grows_exponentially() -> None:
    sender = CallbackSender(None, _tasks(callback_backoff_s=2), None)  # type: ignore[arg-type]
    assert [sender.backoff(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]


@pytest.mark.parametrize("host", ["internal.test", "metadata.test", "mapped.test"])
async def test_a_name_resolving_to_a_refused_address_is_never_connected(
    backend: Backend, receiver: Receiver, only_loopback: list[object], host: str
) -> None:
    sender = _sender(backend, callback_max_attempts=2)
    store, task_id = _task(backend, receiver.url(host))
    store.fail(task_id, "broken")
    LOOKUPS.clear()
    try:
        assert await sender.deliver(task_id) == "retry"
        assert await sender.deliver(task_id) == "failed"
    finally:
        await sender.close()
    assert LOOKUPS[host] == 2 and receiver.posts == [] and only_loopback == []
    task = store.view(task_id).task  # type: ignore[union-attr]
    assert task.callback_state == "failed"
    assert task.callback_error is not None
    assert f"the callback's host {host!r} resolves to" in task.callback_error


def test_the_readme_verification_snippet_accepts_our_signature() -> None:
    """README's "Webhooks" snippet (its one `python3` block) verifies what `sign` sends."""
    import re

    from serve_app.settings import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    (snippet,) = re.findall(r"^```python3\n(.*?)^```", readme, re.M | re.S)
    scope: dict[str, Any] = {}
    exec(compile(snippet, "README", "exec"), scope)
    body = b'{"task_id": "t", "status": "succeeded"}'
    assert scope["verified"](body, sign(KEY, body), KEY.encode())
    assert not scope["verified"](body + b" ", sign(KEY, body), KEY.encode())
    assert not scope["verified"](body, sign("another key", body), KEY.encode())
