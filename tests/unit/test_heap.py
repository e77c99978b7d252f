"""Start-up objects are left out of the collector's full passes."""

from __future__ import annotations

import gc

from core import heap


def test_settling_the_heap_leaves_start_up_objects_out_of_collections() -> None:
    kept = [[n] for n in range(1000)]  # containers alive since "start-up"
    try:
        heap.settle()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
