"""Dependencies of our own for fault tests and the reliability run: a Redis, a PostgreSQL and a
moto S3 server on their own ports and folders, each stoppable and restartable — never the
machine's shared PostgreSQL or Redis, which CI and later runs rely on.

PostgreSQL refuses to run as root: as root, its processes run as the machine's `postgres`
user, in a folder that user can reach (pytest's temporary folders are root-only).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from serve_app.cli.local import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ServiceMissing(RuntimeError):
    """A server binary this machine does not have."""


class OwnServer:
    """A server process of our own, stoppable mid-run and startable again on the same port."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        ready: Callable[[], bool],
        url: str,
        *,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.argv, self.port, self._ready, self.url = argv, port, ready, url
        self.user, self.stop_signal = user, stop_signal
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> None:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=self.user
        )
        deadline = time.monotonic() + timeout_s
        while not self._ready():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.argv[0]} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            self.proc.wait(timeout=20)
        self.proc = None


def _redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.2).ping())
    except redis.RedisError:
        return False


@contextmanager
def own_redis() -> Iterator[OwnServer]:
    """Redis on its own port, keeping nothing on disk."""
    if shutil.which("redis-server") is None:
        raise ServiceMissing("redis-server")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no"]  # fmt: skip
    server = OwnServer(argv, port, lambda: _redis_answers(port), f"redis://127.0.0.1:{port}/0")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def postgres_cluster() -> Iterator[Path]:
    """A fresh database cluster (initdb) in a folder of its own, removed afterwards."""
    if not (PG_BIN / "initdb").exists():
        raise ServiceMissing(str(PG_BIN / "initdb"))
    folder = Path(tempfile.mkdtemp(prefix="own-postgres-"))
    folder.chmod(0o777)
    subprocess.run(
        [str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"],
        user="postgres" if os.geteuid() == 0 else None,
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def own_postgres(cluster: Path) -> Iterator[OwnServer]:
    """PostgreSQL serving `cluster` on its own port. SIGINT, its fast shutdown, does not wait
    for pooled clients to leave."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    port = free_port()
    argv = [str(PG_BIN / "postgres"), "-D", str(cluster / "data"), "-p", str(port),
            "-h", "127.0.0.1", "-k", str(cluster), "-c", "fsync=off"]  # fmt: skip
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres?connect_timeout=2"

    def answers() -> bool:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except OperationalError:
            return False
        finally:
            engine.dispose()

    user = "postgres" if os.geteuid() == 0 else None
    server = OwnServer(argv, port, answers, url, user=user, stop_signal=signal.SIGINT)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def own_moto() -> Iterator[OwnServer]:
    """moto's S3 server on its own port (in memory: a restart forgets its buckets)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return True
        except OSError:
            return False

    argv = [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    server = OwnServer(argv, port, answers, url)
    server.start()
    try:
        yield server
    finally:
        server.stop()
