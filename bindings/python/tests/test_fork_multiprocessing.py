"""multiprocessing with the fork start method while other threads make and free library objects
(issue 15 item 7): each child must be able to make and free its own objects, and exit in time.

Before the library's pthread_atfork handlers, a child forked while a thread was inside a handle
create or free inherited that table's lock held and hung on its first create or free.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import warnings

import pytest

import surgewall
from surgewall import Breaker, Bulkhead

CHILDREN = 40
CHILD_TIMEOUT_S = 20.0


def _child_work() -> None:
    for i in range(20):
        b = Breaker(f"child-{i}", consecutive_failures=3)
        assert b.call(lambda: 7) == 7
        bh = Bulkhead(f"child-{i}", max_concurrent=1)
        with bh:
            pass
        b.free()
        bh.free()


@pytest.mark.skipif(sys.platform == "win32", reason="fork start method is POSIX only")
def test_fork_children_make_objects_while_threads_hammer_handles() -> None:
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            b = Breaker("hammered", consecutive_failures=3)
            b.free()

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    ctx = multiprocessing.get_context("fork")
    failures = []
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a threaded process: that is the point here.
            warnings.simplefilter("ignore", DeprecationWarning)
            for i in range(CHILDREN):
                p = ctx.Process(target=_child_work)
                p.start()
                p.join(CHILD_TIMEOUT_S)
                if p.is_alive():
                    p.kill()
                    p.join()
                    failures.append(f"child {i} hung")
                elif p.exitcode != 0:
                    failures.append(f"child {i} exited {p.exitcode}")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert surgewall.library_version
