"""Who a request acts for, as the guard found it, and what it may touch.

- With API keys configured, the tenant is the key's name: tasks and uploads record it as their
  `owner`, and another key asking for them gets 404 (never 403: whether an id exists is not
  told to whoever does not own it).
- Open mode (no keys) has one tenant: rows record no owner and any client may use any id (ids
  are 128-bit random; a client's address is no identity, it changes behind NAT and mobile
  networks). Idempotency keys are still scoped, by client address, so two clients picking the
  same key do not meet.
- A signed GET URL (the thumbor-style API) is authorised by its signature, not a key: it acts
  for no tenant, so a page can show an upload by id whatever key stored it.

The guard binds the tenant for the request (a context variable: it follows the request's task
into the routes and services); the service layer checks with `owns`.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar, Token
from dataclasses import dataclass

from starlette.types import Scope

OWNER_MAX = 64  # tasks.owner and images.owner are String(64)


@dataclass(frozen=True)
class Tenant:
    # The API key's name (None: open mode or a signed URL), as rows record it.
    owner: str | None
    # Whose idempotency keys these are: the key's name, else the client's address.
    client: str


_current: ContextVar[Tenant | None] = ContextVar("tenant", default=None)


def owner_name(key_name: str) -> str:
    """A key's name as rows record it; a name too long for the column is recorded hashed."""
    if len(key_name) <= OWNER_MAX:
        return key_name
    return hashlib.sha256(key_name.encode()).hexdigest()


def current() -> Tenant | None:
    return _current.get()


def current_owner() -> str | None:
    tenant = _current.get()
    return tenant.owner if tenant else None


def bind(tenant: Tenant | None) -> Token[Tenant | None]:
    return _current.set(tenant)


def unbind(token: Token[Tenant | None]) -> None:
    _current.reset(token)


def owns(requester: str | None, row_owner: str | None) -> bool:
    """Whether a request acting for `requester` may see a row owned by `row_owner`. No
    requester (open mode, a signed URL, the runner) is not checked."""
    return requester is None or requester == row_owner


def scoped_key(idempotency_key: str, tenant: Tenant | None) -> str:
    """The Idempotency-Key as stored: unique per tenant, so two tenants' equal keys differ. Fits
    the existing unique column (String(255)) without a migration."""
    who = tenant.client if tenant else ""
    return hashlib.sha256(f"{who}\n{idempotency_key}".encode()).hexdigest()


def client_address(scope: Scope, trusted_hops: int) -> str:
    """The address the outermost of `trusted_hops` proxies that append to X-Forwarded-For saw
    (Werkzeug's ProxyFix(x_for=N): the Nth entry from the right). Entries left of it were
    written by the client and are never used; with fewer entries than hops (a request that
    bypassed a proxy) the header is ignored. 0 hops: the TCP peer."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if trusted_hops <= 0:
        return str(peer)
    values = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-forwarded-for"]
    entries = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if len(entries) < trusted_hops:
        return str(peer)
    return entries[-trusted_hops]
