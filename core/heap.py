"""Keep the garbage collector's passes few and short in long-running processes."""

from __future__ import annotations

import gc

# Collect the young generation every 10,000 net allocations instead of Python's 700. A
# catch-up page (1,000 events) or a burst of requests allocates tens of thousands of objects
# that are all still in use: at 700, each of them was scanned again and again on its way to the
# old generation, which made reading and decoding events half as fast.
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Collect once, exclude everything alive now from later collections, collect less often.

    A full collection scans every tracked object. Modules, routes, pools and the schema
    objects a process builds at start-up live as long as the process, yet without this each
    full pass walks them again: in the command API that made pauses of 60-120 ms, the whole of
    its p99. Objects frozen here are still freed by reference counting; only a reference cycle
    among them would outlive the process's need for it, and start-up leaves none behind.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
