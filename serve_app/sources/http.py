"""The HTTP loader: http(s) sources fetched with SSRF protection, as imgproxy does it.

- Every connection, the first and each redirect's, goes only to an address that passed the
  rules (serve_app/sources/addresses.py): names are resolved here and the connector is handed
  the checked addresses alone, so a name that resolves differently a moment later (DNS
  rebinding) cannot move the connection; IP literals are judged the same way; and the peer
  actually connected to is checked again before a byte of the body is read.
- SOURCE_HTTP_ALLOWED_HOSTS is matched on the parsed host of every URL, redirects included
  (`http://good.example@evil.example/` is evil.example).
- At most SOURCE_HTTP_MAX_REDIRECTS redirects; a connect timeout and a total one (504); the
  body is read only up to SOURCE_MAX_BYTES (413 past it); a bad status is 502 (404 for the
  origin's own 404/410). The body's bytes decide its format later, never its Content-Type.

One path serves both directions: `_exchange` checks the URL, connects through the checked
resolver and judges the peer, for the GET of a source (`fetch`, redirects followed one by one)
and the POST of a task's webhook (`post`, serve_app/services/callbacks.py; never redirected).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from serve_app.settings import SourceSettings
from serve_app.sources.addresses import AddressPolicy, host_allowed
from serve_app.sources.errors import (
    SourceNotFound,
    SourceRefused,
    SourceTimeout,
    SourceUnreachable,
    too_large,
)

# (host, port) -> the addresses it resolves to. Tests pass their own.
Resolve = Callable[[str, int], Awaitable[list[str]]]
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
USER_AGENT = "image-service/0.1 (+thumbor-compatible URL API)"


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def numeric_ipv4(host: str) -> str | None:
    """The dotted address of a host written as an IPv4 number in any of the forms the C
    library accepts (127.1, 2130706433, 0x7f000001, 0177.0.0.1), else None."""
    if not host or not all(c in "0123456789abcdefx." for c in host.lower()):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


class _CheckedResolver(AbstractResolver):
    """aiohttp's resolver: resolves with `resolve`, hands back only allowed addresses."""

    def __init__(self, resolve: Resolve, policy: AddressPolicy, noun: str = "source") -> None:
        self.resolve_host = resolve
        self.policy = policy
        self.noun = noun

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await self.resolve_host(host, port)
        except OSError as exc:
            raise SourceUnreachable(f"the {self.noun}'s host {host!r} does not resolve") from exc
        reasons = {a: self.policy.refusal(a) for a in addresses}
        allowed = [a for a, why in reasons.items() if why is None]
        if not allowed:
            why = next(iter(reasons.values()), "no address")
            raise SourceRefused(f"the {self.noun}'s host {host!r} resolves to {why}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": socket.IPPROTO_TCP,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in allowed
        ]

    async def close(self) -> None:
        return None


class HttpLoader:
    def __init__(
        self,
        settings: SourceSettings,
        resolve: Resolve | None = None,
        policy: AddressPolicy | None = None,
        noun: str = "source",
    ) -> None:
        """`noun` names what is fetched or posted to in refusals ("source", "callback")."""
        self.settings = settings
        self.noun = noun
        self._verb = "fetched" if noun == "source" else "reached"
        self.policy = policy or AddressPolicy(
            settings.http_allow_loopback, settings.http_allow_private
        )
        self.resolve = resolve or system_resolve
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, on the loop that uses it (a replica's event loop).
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=_CheckedResolver(self.resolve, self.policy, self.noun),
                use_dns_cache=False,  # every connection resolves and is checked afresh
                limit=64,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # no proxy from the environment: it would be connected to
                headers={"User-Agent": USER_AGENT},
                # A gzip-encoded body is inflated as it is read, and SOURCE_MAX_BYTES counts
                # what comes out: a compression bomb stops at the limit.
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def check_url(self, url: str) -> tuple[str, str]:
        """(the URL to request, its host) or a refusal: scheme, host, allow-list, and an IP
        literal host judged at once (aiohttp connects to those without resolving)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise SourceRefused(
                f"only http and https {self.noun}s are {self._verb}", code="source_host"
            )
        host = (parts.hostname or "").lower()
        if not host:
            raise SourceNotFound(f"the {self.noun} URL names no host")
        if not host_allowed(host, self.settings.http_allowed_hosts):
            raise SourceRefused(f"the host {host!r} is not allowed", code="source_host")
        host = numeric_ipv4(host) or host
        why = self.policy.refusal(host)
        if why not in (None, "not an IP address"):
            raise SourceRefused(f"the {self.noun}'s address is {why}")
        # Credentials in the URL are never sent: the request goes to the parsed host alone.
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        clean = parts._replace(netloc=netloc).geturl()
        return clean, host

    async def fetch(self, url: str) -> bytes:
        try:
            async with asyncio.timeout(self.settings.http_timeout_s):
                return await self._follow(url)
        except TimeoutError:
            raise SourceTimeout("the source did not answer in time") from None

    def _timeout(self, total: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=total, sock_connect=min(total, self.settings.http_connect_timeout_s)
        )

    @contextlib.asynccontextmanager
    async def _exchange(
        self, method: str, url: str, timeout: aiohttp.ClientTimeout, **kwargs: Any
    ) -> AsyncIterator[tuple[str, aiohttp.ClientResponse]]:
        """One request to a checked URL, its peer judged before the caller reads a byte:
        (the URL requested, the response). Refusals and failures as the Source* errors."""
        target, _host = self.check_url(url)
        try:
            async with self._client().request(
                method, target, allow_redirects=False, timeout=timeout, **kwargs
            ) as response:
                self._check_peer(response)
                yield target, response
        except (aiohttp.ServerTimeoutError, TimeoutError):
            raise SourceTimeout(f"the {self.noun} did not answer in time") from None
        except (aiohttp.ClientError, OSError) as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, (SourceRefused, SourceUnreachable)):
                raise cause from None
            raise SourceUnreachable(
                f"the {self.noun} could not be {self._verb}: {type(exc).__name__}"
            ) from None

    async def _follow(self, url: str) -> bytes:
        timeout = self._timeout(self.settings.http_timeout_s)
        for _ in range(self.settings.http_max_redirects + 1):
            async with self._exchange("GET", url, timeout) as (target, response):
                if response.status in _REDIRECTS and "Location" in response.headers:
                    url = urljoin(target, response.headers["Location"])
                    continue
                return await self._body(response)
        raise SourceUnreachable(
            f"the source redirected more than {self.settings.http_max_redirects} times"
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
        """POST `body` to a checked URL, redirects not followed; the status it answered (the
        caller judges it). At most 64 KiB of the answer is read, then dropped."""
        try:
            async with asyncio.timeout(timeout_s):
                async with self._exchange(
                    "POST", url, self._timeout(timeout_s), data=body, headers=headers
                ) as (_target, response):
                    await response.content.read(_CHUNK)
                    return response.status
        except TimeoutError:
            raise SourceTimeout(f"the {self.noun} did not answer in time") from None

    def _check_peer(self, response: aiohttp.ClientResponse) -> None:
        """The address actually connected to, judged again (defence in depth)."""
        connection = response.connection
        transport = connection.transport if connection is not None else None
        peer: Any = transport.get_extra_info("peername") if transport is not None else None
        if peer and (why := self.policy.refusal(str(peer[0]))) is not None:
            raise SourceRefused(f"the {self.noun}'s address is {why}")

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        if response.status in (404, 410):
            raise SourceNotFound(f"the source answered {response.status}")
        if not 200 <= response.status < 300:
            raise SourceUnreachable(f"the source answered {response.status}")
        limit = self.settings.max_bytes
        declared = response.content_length
        if declared is not None and declared > limit:
            raise too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        if size == 0:
            raise SourceUnreachable("the source answered with no body")
        return b"".join(chunks)
