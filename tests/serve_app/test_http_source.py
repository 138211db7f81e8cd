"""The HTTP loader and its SSRF protection.

Traffic never leaves 127.0.0.0/8: the origin server runs on 127.0.0.2 and 127.0.0.1, names are
answered by a stubbed resolver, and every socket connect in this module goes through a hook
that fails the test if it is aimed anywhere outside loopback. Refusals of private, link-local
and other addresses are therefore shown without a packet ever sent to one.

The origin at 127.0.0.2 stands for a public host: the loader under test is given a policy that
treats that one address as public (and everything else by the real rules), so that a redirect
from it to loopback, and loopback in all its spellings, can be refused for real.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from pipelines.errors import TooLarge
from serve_app.settings import SourceSettings
from serve_app.sources.addresses import AddressPolicy, embedded_ipv4, host_allowed
from serve_app.sources.errors import SourceNotFound, SourceRefused, SourceTimeout, SourceUnreachable
from serve_app.sources.http import HttpLoader, numeric_ipv4
from tests.conftest import decode, encode, photo
from tests.serve_app.url_stack import url_stack

JPEG = encode(photo("chelsea"), "JPEG")  # 451x300
PUBLIC = "127.0.0.2"  # the test's stand-in for a public address


# --- nothing outside loopback, ever ----------------------------------------------------

ATTEMPTS: list[object] = []


def _loopback(address: object) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(str(host).split("%")[0]) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every connect in this module must aim at 127.0.0.0/8; any other attempt is refused
    on the spot (no packet) and fails the test."""
    ATTEMPTS.clear()
    outside: list[object] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: object) -> None:
        ATTEMPTS.append(address)
        if not _loopback(address):
            outside.append(address)
            raise ConnectionRefusedError(f"test hook: no connection outside loopback ({address})")
        return real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        ATTEMPTS.append(address)
        if not _loopback(address):
            outside.append(address)
            raise ConnectionRefusedError(f"test hook: no connection outside loopback ({address})")
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield outside
    assert outside == [], f"a connection outside 127.0.0.0/8 was attempted: {outside}"


class PublicAt(AddressPolicy):
    """The real rules, except that PUBLIC counts as a public address."""

    def refusal(self, address: str) -> str | None:
        return None if address == PUBLIC else super().refusal(address)


NAMES = {
    "origin.test": [PUBLIC],
    "good.test": [PUBLIC],
    "sub.good.test": [PUBLIC],
    "evil.test": [PUBLIC],
    "localhost": ["127.0.0.1"],
    "loopback.test": ["127.0.0.1"],
    "internal.test": ["10.0.0.5"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:10.0.0.5"],
    "mixed.test": ["10.0.0.5", "192.168.1.9"],
}
LOOKUPS: Counter[str] = Counter()


async def stub_resolve(host: str, port: int) -> list[str]:
    LOOKUPS[host] += 1
    if host == "rebinding.test":  # public at first, internal from the second lookup on
        return [PUBLIC] if LOOKUPS[host] == 1 else ["10.0.0.5"]
    if host not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "unknown test name")
    return NAMES[host]


# --- the origin ------------------------------------------------------------------------


@dataclass
class Origin:
    port: int
    hits: Counter[str]

    def url(self, path: str, host: str = "origin.test") -> str:
        return f"http://{host}:{self.port}{path}"


async def _serve(host: str, port: int, app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    hits: Counter[str] = Counter()
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path
        hits[path] += 1
        if path == "/img.jpg":
            return web.Response(body=JPEG, content_type="text/plain")  # a lying Content-Type
        if path == "/text":
            return web.Response(text="hello, not an image", content_type="image/jpeg")
        if path == "/missing":
            return web.Response(status=404)
        if path == "/broken":
            return web.Response(status=500)
        if path == "/empty":
            return web.Response(body=b"")
        if path == "/gzip":
            body = gzip.compress(JPEG)
            return web.Response(body=body, headers={"Content-Encoding": "gzip"})
        if path == "/gzip-bomb":
            body = gzip.compress(b"\0" * 5_000_000)  # ~5 KB on the wire
            return web.Response(body=body, headers={"Content-Encoding": "gzip"})
        if path == "/big":
            return web.Response(body=b"\xff" * 300_000)
        if path == "/big-chunked":
            response = web.StreamResponse()
            await response.prepare(request)
            for _ in range(40):
                await response.write(b"\xff" * 10_000)
            await response.write_eof()
            return response
        if path == "/slow":
            await release.wait()
            return web.Response(body=JPEG)
        if path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            target = "/img.jpg" if left == 0 else f"/hop/{left - 1}"
            raise web.HTTPFound(target)
        if path == "/to":
            raise web.HTTPFound(request.query["url"])
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    probe = socket.socket()
    probe.bind((PUBLIC, 0))
    port = probe.getsockname()[1]
    probe.close()
    # The same origin on 127.0.0.2 (the stand-in public host) and on 127.0.0.1 (loopback).
    runners = [await _serve(PUBLIC, port, app), await _serve("127.0.0.1", port, app)]
    try:
        yield Origin(port, hits)
    finally:
        release.set()
        for runner in runners:
            await runner.cleanup()


def loader(**settings: object) -> HttpLoader:
    base = {"http_enabled": True, "max_bytes": 200_000, "http_timeout_s": 2.0}
    config = SourceSettings(**{**base, **settings})
    policy = PublicAt(config.http_allow_loopback, config.http_allow_private)
    return HttpLoader(config, stub_resolve, policy)


async def fetch(url: str, **settings: object) -> bytes:
    http = loader(**settings)
    try:
        return await http.fetch(url)
    finally:
        await http.close()


# --- fetching --------------------------------------------------------------------------


async def test_fetches_an_image_whatever_its_content_type(origin: Origin) -> None:
    ATTEMPTS.clear()
    assert await fetch(origin.url("/img.jpg")) == JPEG
    # The hook sees the loader's connections (so its silence elsewhere means something).
    assert [a for a in ATTEMPTS if isinstance(a, tuple) and a[0] == PUBLIC]


async def test_gzip_bodies_are_inflated_within_the_limit(origin: Origin) -> None:
    assert await fetch(origin.url("/gzip")) == JPEG
    with pytest.raises(TooLarge):
        await fetch(origin.url("/gzip-bomb"))


async def test_follows_redirects_up_to_the_limit(origin: Origin) -> None:
    assert await fetch(origin.url("/hop/3"), http_max_redirects=5) == JPEG
    with pytest.raises(SourceUnreachable, match="redirected more than 2"):
        await fetch(origin.url("/hop/3"), http_max_redirects=2)


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/missing", SourceNotFound),
        ("/broken", SourceUnreachable),
        ("/empty", SourceUnreachable),
        ("/big", TooLarge),
        ("/big-chunked", TooLarge),
    ],
)
async def test_bad_answers(origin: Origin, path: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await fetch(origin.url(path))


async def test_slow_origin_is_a_timeout(origin: Origin) -> None:
    with pytest.raises(SourceTimeout):
        await fetch(origin.url("/slow"), http_timeout_s=0.5)


async def test_unknown_host_is_unreachable(origin: Origin) -> None:
    with pytest.raises(SourceUnreachable):
        await fetch(origin.url("/img.jpg", host="nowhere.test"))


# --- SSRF ------------------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0.0.0.0",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "localhost",
    "loopback.test",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_every_loopback_spelling_is_refused(origin: Origin, host: str) -> None:
    with pytest.raises(SourceRefused) as refused:
        await fetch(origin.url("/img.jpg", host=host))
    assert refused.value.status == 403 and refused.value.code == "source_address"
    assert origin.hits["/img.jpg"] == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1"])
async def test_loopback_when_allowed(origin: Origin, host: str) -> None:
    assert await fetch(origin.url("/img.jpg", host=host), http_allow_loopback=True) == JPEG


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/img.jpg",
        "http://localhost:{port}/img.jpg",
        "http://[::1]/x",
        "http://internal.test/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/x",
    ],
)
async def test_a_redirect_to_an_internal_address_is_refused(origin: Origin, target: str) -> None:
    url = origin.url("/to?url=" + target.format(port=origin.port))
    with pytest.raises(SourceRefused):
        await fetch(url)
    assert origin.hits["/img.jpg"] == 0


@pytest.mark.parametrize(
    ("host", "settings"),
    [
        ("internal.test", {}),
        ("10.0.0.5", {}),
        ("192.168.1.9", {}),
        ("172.16.0.1", {}),
        ("100.64.0.1", {}),
        ("[fd00::1]", {}),
        ("mapped.test", {}),
        ("[::ffff:10.0.0.5]", {}),
        ("mixed.test", {}),
        ("metadata.test", {}),
        ("169.254.169.254", {"http_allow_private": True}),  # link-local: never
        ("[::ffff:169.254.169.254]", {"http_allow_private": True}),
        ("[fe80::1]", {"http_allow_private": True}),
        ("224.0.0.1", {"http_allow_private": True}),
        ("240.0.0.1", {"http_allow_private": True}),
        ("255.255.255.255", {"http_allow_private": True}),
    ],
)
async def test_internal_addresses_are_refused_without_connecting(
    host: str, settings: dict[str, object], only_loopback: list[object]
) -> None:
    ATTEMPTS.clear()
    with pytest.raises(SourceRefused):
        await fetch(f"http://{host}/img.jpg", **settings)
    assert ATTEMPTS == []  # judged before any connection


async def test_dns_rebinding_cannot_move_the_connection(origin: Origin) -> None:
    """The name resolves to a public address once (the connection uses that address), then
    to an internal one: the next connection (a redirect to the same name) is refused."""
    LOOKUPS["rebinding.test"] = 0
    first = origin.url("/img.jpg", host="rebinding.test")
    assert await fetch(first) == JPEG
    again = origin.url("/to?url=" + first, host="rebinding.test")
    with pytest.raises(SourceRefused):
        await fetch(again)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://good.test:{port}/img.jpg", True),
        ("http://sub.good.test:{port}/img.jpg", True),
        ("http://good.test@evil.test:{port}/img.jpg", False),
        ("http://evil.test:{port}/img.jpg?good.test", False),
        ("http://good.test.evil.test:{port}/img.jpg", False),
        ("http://evil.test:{port}/good.test/img.jpg", False),
        ("http://{public}:{port}/img.jpg", False),
    ],
)
async def test_allowed_hosts_match_the_parsed_host(origin: Origin, url: str, allowed: bool) -> None:
    target = url.format(port=origin.port, public=PUBLIC)
    settings = {"http_allowed_hosts": ["good.test", "*.good.test"]}
    if allowed:
        assert await fetch(target, **settings) == JPEG
    else:
        with pytest.raises(SourceRefused) as refused:
            await fetch(target, **settings)
        assert refused.value.code == "source_host"
        assert origin.hits["/img.jpg"] == 0


async def test_redirects_are_held_to_the_allow_list_too(origin: Origin) -> None:
    settings = {"http_allowed_hosts": ["good.test"]}
    hop = origin.url("/to?url=" + origin.url("/img.jpg", host="evil.test"), host="good.test")
    with pytest.raises(SourceRefused):
        await fetch(hop, **settings)


def test_address_rules() -> None:
    policy = AddressPolicy()
    assert policy.refusal("8.8.8.8") is None
    assert policy.refusal("2001:4860:4860::8888") is None
    for internal in (
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "::",
        "10.0.0.1",
        "169.254.169.254",
        "fe80::1",
        "::ffff:127.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::a00:1",
    ):
        assert policy.refusal(internal) is not None, internal
    assert AddressPolicy(allow_loopback=True).refusal("127.0.0.1") is None
    assert AddressPolicy(allow_private=True).refusal("10.0.0.1") is None
    assert AddressPolicy(allow_private=True).refusal("169.254.169.254") is not None
    assert str(embedded_ipv4(ipaddress.ip_address("::ffff:10.0.0.1"))) == "10.0.0.1"
    assert numeric_ipv4("0x7f000001") == "127.0.0.1" and numeric_ipv4("example.com") is None
    assert host_allowed("a.b.example", ["*.example"]) and not host_allowed(
        "example.evil", ["example"]
    )


# --- through the URL API ---------------------------------------------------------------


async def test_url_api_fetches_caches_and_refuses(origin: Origin, tmp_path: Path) -> None:
    source = {"http_enabled": True, "cache_ttl_s": 60, "max_bytes": 200_000}
    async with url_stack(tmp_path, source=source, resolve=stub_resolve, policy=PublicAt()) as s:
        url = origin.url("/img.jpg")
        encoded = url.replace(":", "%3A").replace("/", "%2F")
        first = await s.http.get(f"/unsafe/100x100/{url}")
        second = await s.http.get(f"/unsafe/120x80/{encoded}")
        loop = await s.http.get(f"/unsafe/100x100/http://127.0.0.1:{origin.port}/img.jpg")
        text = await s.http.get(f"/unsafe/100x100/{origin.url('/text')}")
        missing = await s.http.get(f"/unsafe/100x100/{origin.url('/missing')}")
        broken = await s.http.get(f"/unsafe/100x100/{origin.url('/broken')}")
        big = await s.http.get(f"/unsafe/100x100/{origin.url('/big')}")
    assert first.status_code == 200 and decode(first.content).size == (100, 100)
    assert second.status_code == 200 and decode(second.content).size == (120, 80)
    assert origin.hits["/img.jpg"] == 1  # kept by URL: the second URL fetched nothing
    assert loop.status_code == 403 and loop.json()["error"]["code"] == "source_address"
    assert text.status_code == 415  # the body decides, not the Content-Type
    assert missing.status_code == 404 and broken.status_code == 502
    assert big.status_code == 413
    for answer in (loop, text, missing, broken, big):
        assert answer.headers["cache-control"] == "no-store"


async def test_url_api_slow_source_is_504(origin: Origin, tmp_path: Path) -> None:
    source = {"http_enabled": True, "http_timeout_s": 0.5}
    async with url_stack(tmp_path, source=source, resolve=stub_resolve, policy=PublicAt()) as s:
        answer = await s.http.get(f"/unsafe/100x100/{origin.url('/slow')}")
    assert answer.status_code == 504


async def test_http_sources_off_by_default(origin: Origin, tmp_path: Path) -> None:
    async with url_stack(tmp_path, resolve=stub_resolve, policy=PublicAt()) as s:
        answer = await s.http.get(f"/unsafe/100x100/{origin.url('/img.jpg')}")
        scheme = await s.http.get("/unsafe/100x100/file:///etc/passwd")
    assert answer.status_code == 404 and origin.hits["/img.jpg"] == 0
    assert scheme.status_code == 404


async def test_post_endpoints_take_image_url(origin: Origin, tmp_path: Path) -> None:
    source = {"http_enabled": True}
    async with url_stack(tmp_path, source=source, resolve=stub_resolve, policy=PublicAt()) as s:
        url = origin.url("/img.jpg")
        resized = await s.http.post("/api/v1/resize", data={"image_url": url, "width": "90"})
        processed = await s.http.post(
            "/api/v1/process",
            json={"image_url": url, "steps": [{"op": "thumbnail", "width": 50, "height": 50}]},
        )
        info = await s.http.post("/api/v1/image-info", data={"image_url": url})
        refused = await s.http.post(
            "/api/v1/resize",
            data={"image_url": f"http://localhost:{origin.port}/img.jpg", "width": "9"},
        )
        both = await s.http.post(
            "/api/v1/resize",
            data={"image_url": url, "width": "9"},
            files={"file": ("a.jpg", JPEG, "image/jpeg")},
        )
        scheme = await s.http.post(
            "/api/v1/resize", data={"image_url": "file:///etc/passwd", "width": "9"}
        )
    assert resized.status_code == 200 and decode(resized.content).width == 90
    assert processed.status_code == 200 and decode(processed.content).size == (50, 50)
    assert info.status_code == 200 and info.json()["width"] == 451
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "source_address"
    assert both.status_code == 422 and scheme.status_code == 422
