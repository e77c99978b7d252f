"""Daily sales (the dashboards' source): revenue, order count and units per SKU.

An order counts as a sale on the day it was placed, once it is confirmed; a cancellation after
confirmation takes it back out. Counting needs the order's lines, which only OrderPlaced
carries, so the projection keeps them per order in `sales_orders`.

Exactly-once: each effect on a day document carries the token of the event that caused it, and
a day document only takes effects newer than its `_last`. Day documents are written before the
order states; a crash in between recomputes the same effects from the old order states, and the
day guards drop those already counted.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast
from uuid import UUID

from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection

from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.base import ReadModel, guarded_bulk_write
from projections.documents import SalesDayDocument, SalesOrderState, SkuSalesRow, cents, money
from subscriptions import ProjectorError

ORDER_EVENTS = frozenset({"OrderPlaced", "OrderConfirmed", "OrderCancelled"})


@dataclass
class Effect:
    """A signed change to one day's counters, caused by one event."""

    day: str
    token: str
    sign: int
    order: SalesOrderState = field(repr=False)


class SalesDailyProjection(ReadModel):
    """`sales_daily`: {date, revenue, orders, skus: [{sku, units, revenue_cents}]}."""

    name = "sales_daily"
    handles = ORDER_EVENTS

    # MongoDB hands back plain dicts: the ones in these collections are the ones written here.
    @property
    def days(self) -> AsyncCollection[SalesDayDocument]:
        """Per-day counters."""
        return cast("AsyncCollection[SalesDayDocument]", self.collection_of("sales_daily"))

    @property
    def orders(self) -> AsyncCollection[SalesOrderState]:
        """Per-order state the counting needs (lines, day, counted)."""
        return cast("AsyncCollection[SalesOrderState]", self.collection_of("sales_orders"))

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        """Fold order states, apply their effects to the days, then save the states."""
        ids = list({str(e.stream_id) for e in events})
        before = {doc["_id"]: doc async for doc in self.orders.find({"_id": {"$in": ids}})}
        after, effects = fold_orders(before, events)
        await self._apply_effects(effects)
        await guarded_bulk_write(self.orders, state_writes(before, after))

    async def _apply_effects(self, effects: list[Effect]) -> None:
        days = list({effect.day for effect in effects})
        current = {doc["_id"]: doc async for doc in self.days.find({"_id": {"$in": days}})}
        ops: list[InsertOne[SalesDayDocument] | ReplaceOne[SalesDayDocument]] = []
        for day in days:
            doc = current.get(day)
            last = doc["_last"] if doc else ""
            new = [e for e in effects if e.day == day and e.token > last]
            if new:
                updated = count(copy.deepcopy(doc) if doc else empty_day(day), new)
                guard = {"_id": day, "_last": last}
                ops.append(ReplaceOne(guard, updated) if doc else InsertOne(updated))
        await guarded_bulk_write(self.days, ops)

    def key(self, event: StoredEvent) -> str | None:
        """The order state an event changes (its day follows from it)."""
        return str(event.stream_id)

    def sources(self, events: Sequence[StoredEvent]) -> set[UUID]:
        """An order's sales state is fed by the order's own stream."""
        return {event.stream_id for event in events}

    async def rewrite(self, events: Sequence[StoredEvent], upto: Position | None = None) -> int:
        """Refold each order up to `upto`, correcting its day by the difference only.

        Never behind what the stored state already folded: a state written past the checkpoint
        (a crash before the checkpoint) has its effects in its day, and the redelivered events
        are dropped by the state guard only if the state still includes them. Folding back to
        the checkpoint would take a counted order out of its day while the day's `_last`, ahead
        of the redelivered confirmation, drops that confirmation: one order short for ever.
        """
        by_order: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_order.setdefault(str(event.stream_id), []).append(event)
        for key, evs in by_order.items():
            stored = await self.orders.find_one({"_id": key})
            bound = max(upto.token if upto else evs[-1].token, stored["_last"] if stored else "")
            state, last = None, ""
            for event in (e for e in evs if e.token <= bound):
                state, last = fold_order(state, event)[0], event.token
            if state is not None:
                await self._settle(key, stored, state, last)
        return len(by_order)

    async def force(self, event: StoredEvent) -> None:
        """Fold one event that was never applied (a parked one) into its order's state."""
        stored = await self.orders.find_one({"_id": str(event.stream_id)})
        state, _ = fold_order(copy.deepcopy(stored) if stored else None, event)
        last = max(event.token, stored["_last"] if stored else "")
        await self._settle(str(event.stream_id), stored, state, last)

    async def _settle(
        self, key: str, stored: SalesOrderState | None, state: SalesOrderState, last: str
    ) -> None:
        """Store `state`; if it counts differently from the `stored` one, correct its day.

        The stored state says what the day counts (days are written before states, and a
        redelivery recounts nothing the state has folded). With no stored state there is
        nothing to go by: the day is taken to count what the events say.
        """
        was_counted = bool(stored["counted"]) if stored else state["counted"]
        if state["counted"] != was_counted:
            effect = Effect(state["day"], last, +1 if state["counted"] else -1, state)
            doc = await self.days.find_one({"_id": state["day"]}) or empty_day(state["day"])
            keep_last = doc["_last"]
            corrected = count(doc, [effect])
            # A correction, not a newer event: moving `_last` would drop other orders' events.
            corrected["_last"] = keep_last
            await self.days.replace_one({"_id": state["day"]}, corrected, upsert=True)
        state["_id"], state["_last"] = key, last
        await self.orders.replace_one({"_id": key}, state, upsert=True)


def fold_orders(
    before: dict[str, SalesOrderState], events: Sequence[StoredEvent]
) -> tuple[dict[str, SalesOrderState], list[Effect]]:
    """New order states and the day effects of events not yet folded into them."""
    after, effects = copy.deepcopy(before), []
    for event in events:
        key = str(event.stream_id)
        state = after.get(key)
        if state is not None and event.token <= state["_last"]:
            continue
        try:
            state, effect = fold_order(state, event)
        except Exception as exc:
            raise ProjectorError(event, exc) from exc
        state["_id"], state["_last"] = key, event.token
        after[key] = state
        if effect is not None:
            effects.append(effect)
    return after, effects


def fold_order(
    state: SalesOrderState | None, event: StoredEvent
) -> tuple[SalesOrderState, Effect | None]:
    """One order event: the new state, and the day effect it has, if any."""
    if event.type == "OrderPlaced":
        return placed(event), None
    if state is None:
        raise ValueError(f"{event.type} before OrderPlaced")
    if event.type == "OrderConfirmed" and not state["counted"]:
        state["counted"] = True
        return state, Effect(state["day"], event.token, +1, state)
    if event.type == "OrderCancelled" and state["counted"]:
        state["counted"] = False
        return state, Effect(state["day"], event.token, -1, state)
    return state, None


def placed(event: StoredEvent) -> SalesOrderState:
    """The state of a new order: its lines, its day, not counted until confirmed."""
    return {
        "day": event.recorded_at.date().isoformat(),
        "lines": event.data["lines"],
        "counted": False,
        "_id": str(event.stream_id),
        "_last": event.token,
    }


def state_writes(
    before: dict[str, SalesOrderState], after: dict[str, SalesOrderState]
) -> list[InsertOne[SalesOrderState] | ReplaceOne[SalesOrderState]]:
    """Guarded writes of the order states that changed."""
    ops: list[InsertOne[SalesOrderState] | ReplaceOne[SalesOrderState]] = []
    for key, state in after.items():
        old = before.get(key)
        if old is None:
            ops.append(InsertOne(state))
        elif state["_last"] != old["_last"]:
            ops.append(ReplaceOne({"_id": key, "_last": old["_last"]}, state))
    return ops


def empty_day(day: str) -> SalesDayDocument:
    """A day with nothing sold (and no event counted: `_last` is before every token)."""
    return {
        "_id": day,
        "date": day,
        "orders": 0,
        "revenue_cents": 0,
        "skus": [],
        "revenue": money(0),
        "_last": "",
    }


def count(doc: SalesDayDocument, effects: list[Effect]) -> SalesDayDocument:
    """Add (or take back) each effect's order to the day's counters."""
    # SKUs may hold dots, which MongoDB field names should not: per-SKU figures are a list.
    per_sku: dict[str, SkuSalesRow] = {row["sku"]: row for row in doc["skus"]}
    for effect in effects:
        doc["orders"] += effect.sign
        for line in effect.order["lines"]:
            row = per_sku.setdefault(
                line["sku"], {"sku": line["sku"], "units": 0, "revenue_cents": 0}
            )
            line_cents = cents(line["unit_price"]) * line["quantity"]
            row["units"] += effect.sign * line["quantity"]
            row["revenue_cents"] += effect.sign * line_cents
            doc["revenue_cents"] += effect.sign * line_cents
    doc["skus"] = [per_sku[sku] for sku in sorted(per_sku)]
    doc["revenue"], doc["_last"] = money(doc["revenue_cents"]), max(e.token for e in effects)
    return doc
