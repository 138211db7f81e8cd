"""thumbor, run as the peer the thumbnail benchmarks compare against.

It runs from its own virtualenv (`bench/.thumbor-venv`, made by `make bench` from
bench/thumbor-requirements.txt: thumbor 7.8.0 wants Pillow < 13, the service has 13), on
127.0.0.1, with:

- the file loader on a folder holding the same JPEGs the service receives
  (`FILE_LOADER_ROOT_PATH`), so thumbor pays no HTTP fetch for its source;
- no source storage (`STORAGE = no_storage`) and no result storage (its default), so every
  request decodes and resizes: the service runs with its result cache off for the same reason;
- no detectors (its default), `QUALITY = 85`, and baseline JPEG (`PROGRESSIVE_JPEG = False`),
  as the service writes; thumbor still Huffman-optimises every JPEG (`optimize=True` is not a
  setting), which costs it a little;
- `--processes` = the number of cores (tornado forks that many single-threaded workers that
  share the listening socket), so thumbor can use every core, as the Ray cluster can.

Nothing of thumbor is copied here; it is only started and stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from serve_app.cli.local import free_port

VENV = Path(__file__).resolve().parent / ".thumbor-venv"
THUMBOR = VENV / "bin" / "thumbor"

CONFIG = """\
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
DETECTORS = []
QUALITY = 85
PROGRESSIVE_JPEG = False
ALLOW_UNSAFE_URL = True
RESPECT_ORIENTATION = False
"""


class ThumborMissing(RuntimeError):
    pass


@dataclass
class Thumbor:
    base_url: str
    names: list[str]
    processes: int
    version: str

    def urls(self, options: str) -> list[str]:
        """`options` is what goes between /unsafe/ and the image path, e.g. fit-in/300x300."""
        return [f"{self.base_url}/unsafe/{options}/{name}" for name in self.names]


def available() -> bool:
    return THUMBOR.exists()


@contextmanager
def thumbor_server(images: list[bytes], processes: int | None = None) -> Iterator[Thumbor]:
    """thumbor serving `images` (as 0.jpg, 1.jpg, ...) on a free 127.0.0.1 port."""
    with tempfile.TemporaryDirectory(prefix="bench-thumbor-") as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        names = []
        for i, data in enumerate(images):
            (root / f"{i}.jpg").write_bytes(data)
            names.append(f"{i}.jpg")
        with thumbor_on(root, processes=processes) as thumbor:
            thumbor.names = names
            yield thumbor


@contextmanager
def thumbor_on(
    root: Path | None, processes: int | None = None, config: str = ""
) -> Iterator[Thumbor]:
    """thumbor on a free 127.0.0.1 port, its file loader on `root` (None: keep the loader
    that `config` names), with `config` lines added to (and overriding) CONFIG. Started in its
    own session and stopped by process group, workers and all."""
    if not available():
        raise ThumborMissing(
            f"{THUMBOR} not found: `make bench` installs it "
            "(python3 -m venv bench/.thumbor-venv && "
            "bench/.thumbor-venv/bin/pip install -r bench/thumbor-requirements.txt)"
        )
    processes = processes or os.cpu_count() or 1
    version = subprocess.run(
        [str(THUMBOR), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="thumbor-conf-") as tmp:
        conf = Path(tmp) / "thumbor.conf"
        conf.write_text(CONFIG.format(root=str(root or tmp)) + config)
        port = free_port()
        log = (Path(tmp) / "thumbor.log").open("wb")
        process = subprocess.Popen(
            [
                str(THUMBOR),
                "--ip=127.0.0.1",
                f"--port={port}",
                f"--conf={conf}",
                f"--processes={processes}",
                "--log-level=warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its forked workers share the group: stop them together
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(base, process)
            yield Thumbor(base, [], processes, version)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            log.close()


def _wait_healthy(base: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"thumbor exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/healthcheck", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError("thumbor did not answer /healthcheck")
