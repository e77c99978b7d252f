"""Figure 8's measurement names, side by side, and its ratios, targets and notes."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core import Figure
from bench.history import BATCH, EVENTS_PER_SKU

APPEND_SHARE = 0.9  # the issue's: append at depth ≥ 90 % of the empty store's rate
CEILING_SHARE = 0.8  # the issue's: rebuild at depth ≥ 80 % of the bulk_write ceiling
# Reading must not slow down with history: at depth as fast as a small store, within noise.
DECODE_SHARE = 0.9
FLAT = 1.5  # "RSS flat": at depth ≤ 1.5 times the small store's peak
LARGEST_DOCUMENT_KIB = 1024  # a sixteenth of MongoDB's 16 MiB document limit


@dataclass(frozen=True)
class Names:
    """The measurements of one side of the figure."""

    where: str
    events: str
    append: str
    read: str
    rebuild: str
    ceiling: str
    rebuild_cli: tuple[str, str]  # seconds, peak RSS
    audit_cli: tuple[str, str]


def names(where: str, append: str) -> Names:
    """The measurement names of the side called `where`."""
    return Names(
        where=where,
        events=f"events in the store, {where}",
        append=append,
        read=f"read_all + decode, {where}",
        rebuild=f"rebuild every projection, {where}",
        ceiling=f"bulk_write ceiling as events, {where}",
        rebuild_cli=(f"ordertrail rebuild --all, {where}", f"rebuild --all peak RSS, {where}"),
        audit_cli=(f"ordertrail audit --all, {where}", f"audit --all peak RSS, {where}"),
    )


SMALL = names("small store", "batch append into an empty store")
DEPTH = names("at depth", "batch append at depth")


def conclude(figure: Figure, skus: int) -> None:
    """Ratios, targets and notes of figure 8."""
    _append_and_reads(figure)
    _rebuild(figure)
    _flat(figure, "rebuild --all", SMALL.rebuild_cli[1], DEPTH.rebuild_cli[1])
    _flat(figure, "audit --all", SMALL.audit_cli[1], DEPTH.audit_cli[1])
    figure.ratio("audit --all time, at depth / small store", DEPTH.audit_cli[0], SMALL.audit_cli[0])
    largest = figure.median(f"a day of {skus:,} SKUs: largest document")
    figure.target(
        f"a day of {skus:,} distinct SKUs: largest document ≤ {LARGEST_DOCUMENT_KIB:,} KiB",
        largest <= LARGEST_DOCUMENT_KIB,
        f"{largest:,.1f} KiB",
    )
    figure.notes += _notes(figure)


def _append_and_reads(figure: Figure) -> None:
    """Append at depth against the empty store; read + decode at depth."""
    share = figure.ratio("batch append, at depth / empty store", DEPTH.append, SMALL.append)
    figure.target(
        f"batch append at depth ≥ {APPEND_SHARE:.0%} of the empty store's rate",
        share >= APPEND_SHARE,
        f"{share:.0%} ({figure.median(DEPTH.append):,.0f} vs "
        f"{figure.median(SMALL.append):,.0f} events/s, "
        f"{figure.median(DEPTH.events):,.0f} events deep)",
    )
    read = figure.ratio("read_all + decode, at depth / small store", DEPTH.read, SMALL.read)
    figure.target(
        f"read_all + decode at depth ≥ {DECODE_SHARE:.0%} of the small store's rate",
        read >= DECODE_SHARE,
        f"{read:.0%} ({figure.median(DEPTH.read):,.0f} vs {figure.median(SMALL.read):,.0f} "
        "events/s)",
    )


def _rebuild(figure: Figure) -> None:
    """Every projection's rebuild against the bulk_write ceiling, at depth."""
    figure.ratio("rebuild / ceiling, small store", SMALL.rebuild, SMALL.ceiling)
    share = figure.ratio("rebuild / ceiling, at depth", DEPTH.rebuild, DEPTH.ceiling)
    figure.target(
        f"rebuild of every projection at depth ≥ {CEILING_SHARE:.0%} of the bulk_write ceiling",
        share >= CEILING_SHARE,
        f"{share:.0%} ({figure.median(DEPTH.rebuild):,.0f} vs "
        f"{figure.median(DEPTH.ceiling):,.0f} events/s)",
    )


def _flat(figure: Figure, command: str, small: str, deep: str) -> None:
    """A peak RSS at depth against the small store's."""
    ratio = figure.ratio(f"{command} peak RSS, at depth / small store", deep, small)
    figure.target(
        f"`ordertrail {command}` peak RSS flat: at depth ≤ {FLAT:g} times the small store's",
        ratio <= FLAT,
        f"{ratio:.2f} times ({figure.median(deep):,.0f} vs {figure.median(small):,.0f} MiB)",
    )


def _notes(figure: Figure) -> list[str]:
    """How the figure was measured."""
    notes = [
        f"History: a year of a shop, {EVENTS_PER_SKU} events per SKU of the catalog: products "
        "registered and stocked, then orders of 1-3 lines placed, stock reserved, confirmed, "
        "75 % shipped (stock shipped) and 15 % cancelled (stock released), 3 % of orders "
        "followed by a reprice or rename, stock received again before it runs out; every "
        "event from the domain's aggregates via the EventCodec, stamped with its day; "
        f"PostgresEventStore.append in batches of about {BATCH:,} events. The small store "
        f"holds a hundredth of it ({figure.median(SMALL.events):,.0f} events).",
        "Append probe: new order streams (placed + confirmed), the same count in batches of "
        f"{BATCH:,} events, into an emptied store and into the deep one (which keeps them).",
        _REBUILD_NOTE,
        "Ceiling: each rebuilt collection's documents inserted afresh (same indexes, unordered "
        "InsertOne bulk_writes, as many calls as the rebuild's pages); rebuild and ceiling both "
        "as events read over all projections.",
    ]
    return notes


_REBUILD_NOTE = (
    "Rebuild: once, by `ordertrail rebuild --all` in a child process on the same stores "
    "(bench.scan_memory; the CLI collects garbage as a worker does); each projection's time "
    "is its alias's, from reserving the new generation to swapping it in (the old one's "
    "grace excluded), over every event of the store. `audit --all` likewise in a child; "
    "peak RSS is the child's high-water mark."
)
