"""Work that can be stopped (issue #18): a call past its deadline, or whose caller is cancelled,
has its child killed at once and replaced; errors pass through without a kill; admission
refuses what the queue ahead would make late."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from deployments.killable import NodeSlots, WorkerPool
from pipelines.errors import DeadlineExceeded, InvalidParameter, Overloaded, WorkerLost
from tests.serve_app import slow_work


@pytest.fixture
def slots(tmp_path: Path) -> NodeSlots:
    return NodeSlots(1, tmp_path)  # this test's own machine-wide slot


@pytest.fixture
async def pool(slots: NodeSlots) -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(1, preload=("tests.serve_app.slow_work",), slots=slots)
    workers.warm()
    yield workers
    workers.close()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_a_call_runs_in_a_child_and_answers(pool: WorkerPool) -> None:
    child = await pool.run(slow_work.pid, deadline=time.monotonic() + 30)
    assert child == pool.pids[0] and child != psutil.Process().pid
    assert psutil.Process(child).nice() > psutil.Process().nice()  # behind interactive work


async def test_past_its_deadline_the_child_is_killed_and_replaced(pool: WorkerPool) -> None:
    (child,) = pool.pids
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await pool.run(slow_work.spin, 30.0, deadline=started + 1.0)
    assert time.monotonic() - started < 1.5
    assert gone(child)  # not computing for a request nobody waits for
    assert pool.kills == 1 and pool.pids[0] != child
    assert await pool.run(slow_work.pid, deadline=time.monotonic() + 30) == pool.pids[0]


async def test_a_cancelled_caller_kills_its_child(pool: WorkerPool) -> None:
    (child,) = pool.pids
    call = asyncio.create_task(pool.run(slow_work.spin, 30.0, deadline=time.monotonic() + 60))
    deadline = time.monotonic() + 10
    while psutil.Process(child).cpu_times().user < 0.2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # it is computing
    call.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await call
    assert gone(child) and pool.kills == 1


async def test_a_child_that_dies_is_a_retryable_503_not_a_deadline(pool: WorkerPool) -> None:
    """A child that dies mid-call (the OOM killer, say) ran out of nothing: it was answered
    504 `deadline_exceeded`; it is a 503 to retry, and the child is replaced."""
    (child,) = pool.pids
    with pytest.raises(WorkerLost) as lost:
        await pool.run(slow_work.die, deadline=time.monotonic() + 30)
    assert lost.value.status == 503 and lost.value.retry_after == 1
    assert pool.pids[0] != child
    assert await pool.run(slow_work.pid, deadline=time.monotonic() + 30) == pool.pids[0]


async def test_an_error_passes_through_and_keeps_the_child(pool: WorkerPool) -> None:
    (child,) = pool.pids
    with pytest.raises(InvalidParameter) as refused:
        await pool.run(slow_work.refuse, deadline=time.monotonic() + 30)
    assert refused.value.field == "size"
    assert pool.pids == [child] and pool.kills == 0


async def test_work_that_the_queue_would_make_late_is_refused_at_once(pool: WorkerPool) -> None:
    first = asyncio.create_task(
        pool.run(slow_work.spin, 2.0, deadline=time.monotonic() + 30, work=2.0 / 0.0035)
    )
    await asyncio.sleep(0.1)
    started = time.monotonic()
    with pytest.raises(Overloaded):
        await pool.run(slow_work.pid, deadline=time.monotonic() + 1.0, work=100.0)
    assert time.monotonic() - started < 0.1
    await first
    # Alone, a call is admitted whatever its estimate: its deadline decides.
    assert await pool.run(slow_work.pid, deadline=time.monotonic() + 30, work=1e9)


async def test_expensive_calls_share_the_machines_slots_across_pools(
    pool: WorkerPool, slots: NodeSlots
) -> None:
    """Another replica's pool on the same machine: with every core's slot taken by expensive
    work, its expensive call is shed at once; a cheap one still runs."""
    other = WorkerPool(1, preload=("tests.serve_app.slow_work",), slots=slots)
    try:
        busy = asyncio.create_task(
            pool.run(slow_work.spin, 1.5, deadline=time.monotonic() + 30, work=400.0)
        )
        await asyncio.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(Overloaded, match="every core"):  # could not finish in time
            await other.run(slow_work.pid, deadline=time.monotonic() + 1.5, work=400.0)
        assert time.monotonic() - started < 0.5
        # With time to spare it waits for the slot instead (a batch item's case).
        waiter = asyncio.create_task(
            other.run(slow_work.pid, deadline=time.monotonic() + 30, work=400.0)
        )
        assert await other.run(slow_work.pid, deadline=time.monotonic() + 30, work=10.0)
        await busy
        assert await waiter  # got the slot once the call ended
    finally:
        other.close()


def test_children_die_with_their_replica() -> None:
    """A replica killed outright (Serve replacing it, kill -9) takes its children along, even
    mid-call."""
    import subprocess
    import sys

    code = (
        "import asyncio, sys, time\n"
        "from deployments.killable import NodeSlots, WorkerPool\n"
        "from tests.serve_app import slow_work\n"
        "async def main():\n"
        "    pool = WorkerPool(1, preload=('tests.serve_app.slow_work',))\n"
        "    pool.warm()\n"
        "    print(pool.pids[0], flush=True)\n"
        "    await pool.run(slow_work.spin, 60.0, deadline=time.monotonic() + 60)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(0.5)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 2
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)
