"""Work that can be stopped: a few child processes, each running one call at a time, killed
and replaced when the call's deadline passes or its caller goes away (issue #18).

Some work cannot be interrupted inside a process: Pillow's median filter, EasyOCR or MTCNN
spend seconds in one C call, holding a core (the median even holds the GIL). A thread running
it cannot be stopped; a process can. So a deployment sends its expensive calls here, and:

- a call whose deadline passes, or whose asyncio caller is cancelled (Serve cancels a request
  whose client disconnected, and propagates that through handles), gets its process SIGKILLed
  at once and a fresh one started in its place;
- at most one expensive call per core computes at once on the machine, across every replica
  (`NodeSlots`: flock'ed files, released by the kernel if a replica dies); an expensive call
  waits for one only while it could still finish by its deadline, and is then refused with 503
  `overloaded` and Retry-After before anything started, as is one that the work queued ahead
  of it here would make late: shed, not left to time out (with every core computing, it could
  only slow the others past their deadlines);
- the children run at a lower CPU priority (nice), so the cheap work of the same machine (the
  ingress's thumbnails) keeps its latency while they compute.

Measured before choosing it, on the 2-core dev machine: a child costs ~0.6 s of CPU to start
(Python, numpy, Pillow, OpenCV and the pipelines imported; ~80 MB RSS, ~36 MB PSS), so it is
started ahead, never per call; a call costs ~3 ms round trip, plus ~1 ms per MB of image sent;
a call past a 1.0 s deadline answered at 1.01 s with its child already dead. Tiles checked
against the deadline would have served the filters only (not EasyOCR or MTCNN, nor Tesseract's
own process), and a thread cannot be stopped at all. pebble's ProcessPool does the same job but
sends SIGTERM first and waits up to 3 s for a worker whose C call ignores it: its 1 s timeout
surfaced after 2.0 s, and the next call waited 1.2 s more; hence this small pool instead.

Children are started with `subprocess` (not multiprocessing): a Ray worker's `__main__` would
otherwise be imported again in every child. They die with the replica (PR_SET_PDEATHSIG), even
mid-call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import importlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from pipelines.cost import SECONDS_PER_WORK_UNIT
from pipelines.errors import DeadlineExceeded, Overloaded, WorkerLost

log = logging.getLogger("ray.serve")
T = TypeVar("T")

CHILD_NICE = 10
_PR_SET_PDEATHSIG = 1
# Calls priced at least this (work units, ~0.5 s of one core) take a node slot; cheaper ones
# (a Haar look at a small photo) run without one.
SLOT_MIN_WORK = 150.0
SLOT_POLL_S = 0.05


class NodeSlots:
    """At most `count` expensive calls at once on this machine, whichever replica runs them:
    slot i is an exclusive flock on a file in `folder`. IMAGE_WORK_SLOTS (default: the CPU
    count) and IMAGE_WORK_SLOTS_DIR set them; the kernel frees a dead holder's slot."""

    def __init__(self, count: int | None = None, folder: Path | None = None) -> None:
        self.count = count or int(os.environ.get("IMAGE_WORK_SLOTS", 0)) or os.cpu_count() or 1
        default = Path(tempfile.gettempdir()) / f"image-work-slots-{os.getuid()}"
        self.folder = folder or Path(os.environ.get("IMAGE_WORK_SLOTS_DIR", default))
        self.folder.mkdir(parents=True, exist_ok=True)

    def take(self) -> int | None:
        """A held slot's file descriptor, or None when every slot is taken."""
        for index in range(self.count):
            fd = os.open(self.folder / f"slot-{index}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    @staticmethod
    def give_back(fd: int) -> None:
        os.close(fd)  # closing the descriptor drops the lock


Call = tuple[Callable[..., Any], tuple[Any, ...]]


class _Worker:
    def __init__(self, preload: Sequence[str], nice: int, init: Call | None) -> None:
        parent, child = socket.socketpair()
        try:
            command = [sys.executable, "-m", "deployments.killable", str(child.fileno())]
            self.process = subprocess.Popen(
                [*command, str(nice), *preload],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self.conn = Connection(parent.detach())
        self.calls = 0
        if init is not None:  # e.g. load the default engine, before the first call needs it
            self.conn.send((*init, False))

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
        """Blocking (on a pool thread): send the call, wait for ("ok" | "error", value)."""
        self.conn.send((fn, args, True))
        answer: tuple[str, Any] = self.conn.recv()
        self.calls += 1
        return answer

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)  # SIGKILL is not refused; this reaps the zombie


class WorkerPool:
    """`size` child processes for calls that must be stoppable. `preload` names modules each
    child imports at start (an engine's module, so the first call pays no import)."""

    def __init__(
        self,
        size: int,
        *,
        preload: Sequence[str] = (),
        init: Call | None = None,
        nice: int = CHILD_NICE,
        slots: NodeSlots | None = None,
    ) -> None:
        self.size = size
        self.slots = slots or NodeSlots()
        self.preload = tuple(preload)
        self.init = init  # run by every child as it starts, no answer awaited
        self.nice = nice
        self.kills = 0
        self.calls = 0
        # Seconds the last calls really took per second their estimate said: more than 1 when
        # the machine is shared (other pools, the ingress), so admission follows the machine.
        self.pace = 1.0
        self._queued_s = 0.0
        self._running: dict[int, float] = {}  # worker pid -> expected end (monotonic)
        # One long-lived thread starts every child: PR_SET_PDEATHSIG fires when the thread that
        # started a child ends, not only its process.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="killable-spawn")
        self._io = ThreadPoolExecutor(size, thread_name_prefix="killable-io")
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: list[_Worker] = []

    def _start(self) -> _Worker:
        return self._spawner.submit(_Worker, self.preload, self.nice, self.init).result()

    def _queue(self) -> asyncio.Queue[_Worker]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self.size):
                worker = self._start()
                self._workers.append(worker)
                self._idle.put_nowait(worker)
        return self._idle

    def warm(self) -> None:
        """Start the children now (from the replica's event loop thread) rather than on the
        first call."""
        self._queue()

    def call_now(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the first child, blocking: for a replica's start, before any request
        (a model that fails to load is then known at once)."""
        self._queue()
        kind, value = self._workers[0].call(fn, args)
        if kind == "error":
            raise value
        result: T = value
        return result

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self._workers]

    def ahead_s(self) -> float:
        """Estimated seconds of work already running or waiting here."""
        now = time.monotonic()
        return sum(max(0.0, end - now) for end in self._running.values()) + self._queued_s

    def predicted_end(self, seconds: float) -> float:
        """When a call estimated at `seconds` would end if admitted now."""
        return time.monotonic() + (self.ahead_s() / self.size + seconds) * self.pace

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        deadline: float,
        work: float = 0.0,
    ) -> T:
        """`fn(*args)` in a child; DeadlineExceeded (504) and the child killed if `deadline`
        (time.monotonic()) passes first, the child killed too if this coroutine is cancelled.
        `work` (cost units) decides admission: Overloaded (503) when the work ahead of it would
        make it end too late."""
        seconds = work * SECONDS_PER_WORK_UNIT
        # Refused for the work queued ahead of it here: alone, a call runs and its deadline
        # decides (LIMITS_MAX_WORK, not this, bounds what one call may cost).
        if self.ahead_s() > 0 and self.predicted_end(seconds) > deadline:
            raise Overloaded("the workers for expensive image work are busy; try again shortly")
        slot = await self._slot(deadline, seconds) if work >= SLOT_MIN_WORK else None
        try:
            return await self._run(fn, args, deadline, seconds)
        finally:
            if slot is not None:
                self.slots.give_back(slot)

    async def _slot(self, deadline: float, seconds: float) -> int:
        """A node slot, waited for while the call could still finish by its deadline once it
        starts (a batch item waits its turn); past that, 503 before anything started."""
        while (slot := self.slots.take()) is None:
            if time.monotonic() + SLOT_POLL_S + seconds * self.pace > deadline:
                raise Overloaded("every core is busy with expensive image work; try again shortly")
            await asyncio.sleep(SLOT_POLL_S)
        return slot

    async def _run(
        self, fn: Callable[..., T], args: tuple[Any, ...], deadline: float, seconds: float
    ) -> T:
        idle = self._queue()
        self._queued_s += seconds
        try:
            worker = await asyncio.wait_for(idle.get(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise DeadlineExceeded("the work ran out of time before it could start") from None
        finally:
            self._queued_s -= seconds
        started = time.monotonic()
        self._running[worker.pid] = started + seconds * self.pace
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._io, worker.call, fn, args)
        healthy = False
        try:
            kind, value = await asyncio.wait_for(
                asyncio.shield(call), max(0.0, deadline - time.monotonic())
            )
            healthy = True
        except TimeoutError:
            raise DeadlineExceeded("the work ran out of time and was stopped") from None
        except (EOFError, OSError, pickle.PicklingError) as exc:
            log.warning("an image worker failed (%r); starting another", exc)
            raise WorkerLost("the worker doing this stopped; try again") from None
        finally:
            self._running.pop(worker.pid, None)
            self.calls += 1
            if healthy:
                self._learn(time.monotonic() - started, seconds)
                idle.put_nowait(worker)
            else:
                # Timed out, cancelled (client gone) or broken: the child may still be
                # computing. Kill it, so nothing works for a request nobody waits for.
                self._replace(worker, call)
        if kind == "error":
            raise value
        result: T = value
        return result

    def _learn(self, took: float, expected: float) -> None:
        if expected >= 0.05:
            # Bounded: a burst of contention must not make every later call look too late.
            ratio = min(4.0, max(0.5, took / expected))
            self.pace = 0.8 * self.pace + 0.2 * ratio

    def _replace(self, worker: _Worker, call: asyncio.Future[Any]) -> None:
        self.kills += 1
        worker.kill()
        call.cancel()
        call.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved"
        fresh = self._start()
        self._workers = [w for w in self._workers if w is not worker] + [fresh]
        assert self._idle is not None
        self._idle.put_nowait(fresh)

    def close(self) -> None:
        for worker in self._workers:
            worker.kill()
        self._workers = []
        self._io.shutdown(wait=False, cancel_futures=True)
        self._spawner.shutdown(wait=False, cancel_futures=True)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child(fd: int, nice: int, preload: Sequence[str]) -> None:
    """A worker's life: answer calls one at a time until the parent closes the socket."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(nice)
    for module in preload:
        importlib.import_module(module)
    conn = Connection(fd)
    while True:
        try:
            fn, args, reply = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", fn(*args))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
            answer = ("error", exc)
        if not reply:
            continue
        try:
            conn.send(answer)
        except (pickle.PicklingError, TypeError, AttributeError):
            conn.send(("error", RuntimeError(f"unpicklable result from {fn!r}")))
        except (BrokenPipeError, OSError):
            return


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
