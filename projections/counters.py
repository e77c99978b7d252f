"""Counter documents: sums of signed effects, each effect taken exactly once, in bounded writes.

A counter document (one day's sales totals, one SKU's sales on one day) holds integer counters
and `_last`, the token of the newest effect it took. Effects reach it in commit order and a
batch's effects on one document go in one update, so `_last` tells which effects it holds: every
one with a token up to `_last`, none after. A batch reads the touched documents' counters (a few
fields each, never a list), keeps the effects newer than each one's `_last`, and writes each
document once: `$inc` of their sum and `$set` of the new `_last`, guarded by the `_last` it read
(compare-and-set), or an insert when there was no document (the unique `_id` is the guard). So
a redelivered batch is dropped document by document, however the batches were cut, and a write
that lost a race (a second writer) matches nothing and raises ConcurrentWrite for a re-run.

The cost of a batch is a read and a write per document it touches, whatever the documents
already count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from core.mongo import find_by_ids
from projections.base import guarded_bulk_write
from projections.documents import Document

Derive = Callable[[Mapping[str, int]], dict[str, Any]]


def _nothing_derived(_: Mapping[str, int]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Tally:
    """A signed change to one counter document, caused by the event with `token`."""

    key: str
    token: str
    counts: Mapping[str, int]
    fields: Mapping[str, str]  # what the document is about (its day, its SKU), set on creation


@dataclass(frozen=True)
class Shape:
    """The counters of a kind of document, and fields computed from them (a money string)."""

    names: tuple[str, ...]
    derive: Derive = field(default=_nothing_derived)

    def figures(self, tallies: Iterable[Tally], base: Mapping[str, Any] | None = None) -> Document:
        """The counters after `tallies`, from `base`'s (or zero)."""
        counts = {name: (base or {}).get(name, 0) for name in self.names}
        for tally in tallies:
            for name, change in tally.counts.items():
                counts[name] += change
        return counts

    def document(self, key: str, tallies: Sequence[Tally], last: str) -> Document:
        """The document `tallies` make from nothing (fields, counters, derived fields)."""
        counts = self.figures(tallies)
        return {"_id": key, **tallies[0].fields, **counts, **self.derive(counts), "_last": last}


def by_key(tallies: Iterable[Tally]) -> dict[str, list[Tally]]:
    """Tallies grouped by document, each group in the order given (commit order)."""
    groups: dict[str, list[Tally]] = {}
    for tally in tallies:
        groups.setdefault(tally.key, []).append(tally)
    return groups


class Counters:
    """A collection of counter documents of one shape."""

    def __init__(self, collection: AsyncCollection[Any], shape: Shape) -> None:
        self.collection, self.shape = collection, shape

    async def add(self, tallies: Sequence[Tally]) -> None:
        """Count the tallies each document has not counted yet (newer than its `_last`)."""
        await self._write(tallies, advance=True)

    async def correct(self, tallies: Sequence[Tally]) -> None:
        """Count the tallies as a correction: all of them, leaving each `_last` as it is.

        A correction is no newer event: moving `_last` would drop other orders' effects.
        """
        await self._write(tallies, advance=False)

    async def _write(self, tallies: Sequence[Tally], advance: bool) -> None:
        groups = by_key(tallies)
        if not groups:
            return
        fields = dict.fromkeys(("_last", *self.shape.names), 1)
        current = await find_by_ids(self.collection, groups, fields)
        ops: list[InsertOne[Any] | UpdateOne] = []
        for key, group in groups.items():
            doc = current.get(key)
            last = doc["_last"] if doc else ""
            new = [t for t in group if t.token > last] if advance else group
            if new:
                newest = max(t.token for t in new) if advance else last
                ops.append(self._op(key, doc, new, newest))
        await guarded_bulk_write(self.collection, ops)

    def _op(
        self, key: str, doc: Document | None, new: list[Tally], last: str
    ) -> InsertOne[Any] | UpdateOne:
        """The write of `new` onto `doc`: an insert if there is none, else a guarded `$inc`."""
        if doc is None:
            return InsertOne(self.shape.document(key, new, last))
        change = self.shape.figures(new)
        after = self.shape.figures(new, doc)
        update = {"$inc": change, "$set": {**self.shape.derive(after), "_last": last}}
        return UpdateOne({"_id": key, "_last": doc["_last"]}, update)
