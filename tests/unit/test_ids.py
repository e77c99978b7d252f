"""Time-ordered ids: version 7 UUIDs that sort by creation time and never repeat."""

from __future__ import annotations

import time
from uuid import UUID

from core.ids import uuid7


def test_a_uuid7_is_a_valid_version_7_uuid_stamped_with_the_time() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid7()
    after = time.time_ns() // 1_000_000
    assert (made.version, made.variant) == (7, "specified in RFC 4122")
    assert UUID(str(made)) == made
    assert before <= made.int >> 80 <= after


def test_ids_made_in_later_milliseconds_sort_later_and_none_repeats() -> None:
    earlier = [uuid7() for _ in range(1_000)]
    time.sleep(0.002)
    later = [uuid7() for _ in range(1_000)]
    assert max(earlier) < min(later)
    assert len(set(earlier + later)) == 2_000
