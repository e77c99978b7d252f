"""Daily sales (the dashboards' source): revenue and order count per day, units per day and SKU.

An order counts as a sale on the day it was placed, once it is confirmed; a cancellation after
confirmation takes it back out. Counting needs the order's lines, which only OrderPlaced
carries, so the projection keeps them per order in `sales_orders`.

Bounded documents: a day's document holds its totals only, and each (day, SKU) has a counter
document of its own in `sales_daily_skus`. A batch reads and writes the counters it touches
(projections.counters), never a whole day's SKUs, so no document and no write grows with the
number of SKUs sold in a day.

Exactly-once: each effect on a counter document (a day's totals, one SKU's figures on that day)
carries the token of the event that caused it, and each counter document only takes effects
newer than its own `_last`. The counters are written before the order states; a crash in
between (or between two counter writes) recomputes the same effects from the old order states,
and each counter document drops those it already counted and takes the others.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import cast
from uuid import UUID

from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection

from core.mongo import find_by_ids
from eventstore.positions import Position
from eventstore.records import StoredEvent
from projections.base import ReadModel, guarded_bulk_write
from projections.counters import Counters, Shape, Tally
from projections.documents import (
    SalesDayDocument,
    SalesDaySkuDocument,
    SalesOrderState,
    cents,
    money,
)
from subscriptions import ProjectorError

ORDER_EVENTS = frozenset({"OrderPlaced", "OrderConfirmed", "OrderCancelled"})
DAY = Shape(("orders", "revenue_cents"), lambda c: {"revenue": money(c["revenue_cents"])})
DAY_SKU = Shape(("units", "revenue_cents"))


@dataclass
class Effect:
    """A signed change to one day's counters, caused by one event."""

    day: str
    token: str
    sign: int
    order: SalesOrderState = field(repr=False)


class SalesDailyProjection(ReadModel):
    """`sales_daily`: {date, orders, revenue}; `sales_daily_skus`: {date, sku, units, revenue}."""

    name = "sales_daily"
    handles = ORDER_EVENTS

    # MongoDB hands back plain dicts: the ones in these collections are the ones written here.
    @property
    def days(self) -> AsyncCollection[SalesDayDocument]:
        """Per-day totals."""
        return cast("AsyncCollection[SalesDayDocument]", self.collection_of("sales_daily"))

    @property
    def day_skus(self) -> AsyncCollection[SalesDaySkuDocument]:
        """Per-(day, SKU) counters."""
        collection = self.collection_of("sales_daily_skus")
        return cast("AsyncCollection[SalesDaySkuDocument]", collection)

    @property
    def orders(self) -> AsyncCollection[SalesOrderState]:
        """Per-order state the counting needs (lines, day, counted)."""
        return cast("AsyncCollection[SalesOrderState]", self.collection_of("sales_orders"))

    async def apply(self, events: Sequence[StoredEvent]) -> None:
        """Fold order states, apply their effects to the counters, then save the states."""
        ids = list({str(e.stream_id) for e in events})
        before = await find_by_ids(self.orders, ids)
        after, effects = fold_orders(before, events)
        await self._apply_effects(effects)
        await guarded_bulk_write(self.orders, state_writes(before, after))

    async def _apply_effects(self, effects: list[Effect], correction: bool = False) -> None:
        """Count the effects into the days' totals and the (day, SKU) counters.

        Both writes finish before any error is raised: a lost race is re-run as a whole, and
        nothing is left in flight behind it.
        """
        days, day_skus = Counters(self.days, DAY), Counters(self.day_skus, DAY_SKU)
        writes: list[Awaitable[None]] = (
            [days.correct(day_tallies(effects)), day_skus.correct(sku_tallies(effects))]
            if correction
            else [days.add(day_tallies(effects)), day_skus.add(sku_tallies(effects))]
        )
        for outcome in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    def key(self, event: StoredEvent) -> str | None:
        """The order state an event changes (its day follows from it)."""
        return str(event.stream_id)

    def sources(self, events: Sequence[StoredEvent]) -> set[UUID]:
        """An order's sales state is fed by the order's own stream."""
        return {event.stream_id for event in events}

    async def rewrite(self, events: Sequence[StoredEvent], upto: Position | None = None) -> int:
        """Refold each order up to `upto`, correcting its day's counters by the difference only.

        Never behind what the stored state already folded: a state written past the checkpoint
        (a crash before the checkpoint) has its effects in its counters, and the redelivered
        events are dropped by the state guard only if the state still includes them. Folding
        back to the checkpoint would take a counted order out of its day while the counters'
        `_last`, ahead of the redelivered confirmation, drops that confirmation: one order
        short for ever.
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
        """Store `state`; if it counts differently from the `stored` one, correct its counters.

        The stored state says what the counters count (they are written before states, and a
        redelivery recounts nothing the state has folded). With no stored state there is
        nothing to go by: the counters are taken to count what the events say.
        """
        was_counted = bool(stored["counted"]) if stored else state["counted"]
        if state["counted"] != was_counted:
            effect = Effect(state["day"], last, +1 if state["counted"] else -1, state)
            await self._apply_effects([effect], correction=True)
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


def sku_key(day: str, sku: str) -> str:
    """The `_id` of a (day, SKU) counter document: the day's fixed 10 characters, then the SKU."""
    return f"{day}|{sku}"


def day_tallies(effects: Sequence[Effect]) -> list[Tally]:
    """What each effect changes in its day's totals."""
    return [
        Tally(
            effect.day,
            effect.token,
            {"orders": effect.sign, "revenue_cents": effect.sign * order_cents(effect.order)},
            {"date": effect.day},
        )
        for effect in effects
    ]


def sku_tallies(effects: Sequence[Effect]) -> list[Tally]:
    """What each effect changes in the counters of its order's SKUs on its day."""
    return [
        Tally(
            sku_key(effect.day, line["sku"]),
            effect.token,
            {
                "units": effect.sign * line["quantity"],
                "revenue_cents": effect.sign * cents(line["unit_price"]) * line["quantity"],
            },
            {"date": effect.day, "sku": line["sku"]},
        )
        for effect in effects
        for line in effect.order["lines"]
    ]


def order_cents(order: SalesOrderState) -> int:
    """An order's revenue in cents: its lines' unit prices times quantities."""
    return sum(cents(line["unit_price"]) * line["quantity"] for line in order["lines"])
