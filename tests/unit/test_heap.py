"""Start-up objects are left out of collections, and young ones are collected less often."""

from __future__ import annotations

import gc

from core import heap


def test_settling_the_heap_freezes_start_up_and_raises_the_young_threshold() -> None:
    kept = [[n] for n in range(1000)]  # containers alive since "start-up"
    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
