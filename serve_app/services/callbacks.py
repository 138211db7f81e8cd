"""Task webhooks: one signed POST of the task's JSON to its `callback_url` once it ends.

- The body is the task exactly as GET /api/v1/tasks/{id} answers it (`TaskOut`, as JSON), read
  when the POST is made; `X-Signature: sha256=<hex>` is HMAC-SHA256 of those very bytes under
  TASKS_CALLBACK_KEY (as GitHub's X-Hub-Signature-256). `X-Task-Id` names the task.
- The POST goes through the remote sources' SSRF protection (serve_app/sources/http.py): the
  same URL rules, checked resolver and peer check, SOURCE_HTTP_ALLOWED_HOSTS, and
  SOURCE_HTTP_ALLOW_LOOPBACK / _PRIVATE unless TASKS_CALLBACK_ALLOW_LOOPBACK / _PRIVATE say
  otherwise. Redirects are not followed. A URL the rules refuse outright is refused at submit
  (422, field `callback_url`); a name resolving to a refused address fails at delivery.
- Any 2xx is delivered. Anything else (a status, no connection, a timeout, a refusal) is
  tried again after TASKS_CALLBACK_BACKOFF_S * 2^(attempt-1), until
  TASKS_CALLBACK_MAX_ATTEMPTS POSTs, then the webhook is `failed` with the last reason.
- The state lives on the task's row (store/task_store.py): whoever claims a due webhook posts
  it, so two runner replicas never post the same one at once. Counted in
  `ray_image_task_callbacks_total{outcome="delivered|retry|failed"}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging

from pipelines.errors import InvalidParameter, ServiceError
from serve_app.observe.metrics import record_task_callback
from serve_app.schemas import TaskOut
from serve_app.services.offload import offload
from serve_app.settings import SourceSettings, TaskSettings
from serve_app.sources.addresses import AddressPolicy
from serve_app.sources.errors import SourceNotFound, SourceRefused
from serve_app.sources.http import HttpLoader, Resolve
from serve_app.store.task_store import TaskStore

log = logging.getLogger("ray.serve")
SIGNATURE_HEADER = "X-Signature"
MAX_URL = 4096


def sign(key: str, body: bytes) -> str:
    """The X-Signature value of `body`: `sha256=` and the HMAC-SHA256 in hex."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def callback_client(
    tasks: TaskSettings,
    source: SourceSettings,
    resolve: Resolve | None = None,
    policy: AddressPolicy | None = None,
) -> HttpLoader:
    """The HTTP client of webhooks: the sources' loader, under the callback's address rules."""
    loopback = source.http_allow_loopback
    private = source.http_allow_private
    if tasks.callback_allow_loopback is not None:
        loopback = tasks.callback_allow_loopback
    if tasks.callback_allow_private is not None:
        private = tasks.callback_allow_private
    rules = source.model_copy(
        update={"http_allow_loopback": loopback, "http_allow_private": private}
    )
    return HttpLoader(rules, resolve, policy, noun="callback")


def check_callback_url(url: object, tasks: TaskSettings, client: HttpLoader) -> str:
    """A batch's callback_url, or 422 (field callback_url): no key to sign with, not a string,
    too long, not http(s), no host, a host off the allow-list, an address the rules refuse."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidParameter("callback_url must be an http(s) URL", field="callback_url")
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidParameter(f"callback_url is over {MAX_URL} characters", field="callback_url")
    if not tasks.callback_key:
        raise InvalidParameter(
            "callbacks are off: the service has no TASKS_CALLBACK_KEY to sign them with",
            field="callback_url",
        )
    try:
        client.check_url(url)
    except (SourceRefused, SourceNotFound) as exc:
        raise InvalidParameter(
            f"callback_url refused: {exc.message}", field="callback_url"
        ) from None
    return url


class CallbackSender:
    """Posts due webhooks: those of tasks this runner just ended, and any a sweep finds."""

    def __init__(self, store: TaskStore, settings: TaskSettings, client: HttpLoader) -> None:
        self.store = store
        self.settings = settings
        self.client = client

    def backoff(self, attempt: int) -> float:
        """The wait after the `attempt`th POST failed."""
        return float(self.settings.callback_backoff_s * 2 ** (attempt - 1))

    @property
    def lease_s(self) -> float:
        """How long a claim keeps others off: past the POST's own timeout."""
        return self.settings.callback_timeout_s * 2 + 5

    async def deliver_due(self, limit: int = 16) -> int:
        """Claim and post the webhooks due now, at once; how many were delivered."""
        ids = await offload("database", self.store.due_callbacks, limit)
        outcomes = await asyncio.gather(
            *(self.deliver(task_id) for task_id in ids), return_exceptions=True
        )
        for task_id, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, BaseException):  # its claim lapses; a later sweep retries
                log.warning("task %s: callback not sent: %r", task_id, outcome)
        return sum(outcome == "delivered" for outcome in outcomes)

    async def deliver(self, task_id: str) -> str | None:
        """Claim the task's webhook if due and post it: delivered, retry or failed (None: not
        due, or another sender has it)."""
        attempt = await offload("database", self.store.claim_callback, task_id, self.lease_s)
        if attempt is None:
            return None
        view = await offload("database", self.store.view, task_id)
        if view is None or not view.task.callback_url:  # deleted meanwhile (retention)
            return None
        body = TaskOut.of(view).model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.settings.callback_key, body),
            "X-Task-Id": task_id,
        }
        reason: str | None
        try:
            status = await self.client.post(
                view.task.callback_url, body, headers, self.settings.callback_timeout_s
            )
            reason = None if 200 <= status < 300 else f"the callback answered {status}"
        except ServiceError as exc:
            reason = exc.message
        except Exception as exc:  # stored as the reason, tried again
            log.exception("task %s: callback error", task_id)
            reason = f"the callback could not be sent: {type(exc).__name__}"
        if reason is None:
            outcome = "delivered"
            await offload("database", self.store.callback_delivered, task_id, attempt)
        elif attempt >= self.settings.callback_max_attempts:
            outcome = "failed"
            reason = f"gave up after {attempt} attempts: {reason}"
            await offload("database", self.store.callback_failed, task_id, attempt, reason)
            log.warning("task %s: callback %s", task_id, reason)
        else:
            outcome = "retry"
            wait = self.backoff(attempt)
            await offload("database", self.store.callback_retry, task_id, attempt, reason, wait)
        record_task_callback(outcome)
        return outcome

    async def close(self) -> None:
        await self.client.close()
