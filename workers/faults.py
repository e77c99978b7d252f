"""Fault injection for the reliability suite: subscribers that fail as real ones can.

Test-only: `ORDERTRAIL_FAULT_INJECTION` is refused unless `ORDERTRAIL_ENV=test`. Its value is
`seed=S,poison=P,outage=Q,crash=R` (rates between 0 and 1):

- poison: an event drawn with probability P (per subscriber, from a hash of the seed, the
  subscriber and the event id, so the test can name them afterwards) fails every time it is
  applied, with an error of one of the families a real event can cause (a projector bug, a value
  BSON cannot encode, an integer overflow, a document over 16 MB, a KeyError in a fold). It must
  end up parked, and nothing else may.
- outage: any apply fails with probability Q with an error of an unreachable store (MongoDB,
  PostgreSQL, a socket). It must be waited out and park nothing.
- crash: any catch-up run fails with probability R before it reads, with an error nobody
  listed. The supervisor must restart the subscriber.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass

from bson.errors import InvalidDocument
from pymongo.errors import AutoReconnect, DocumentTooLarge, NetworkTimeout

from core.settings import Settings
from eventstore.records import StoredEvent, StoreUnavailable

POISONS: tuple[type[Exception], ...] = (
    ValueError,
    KeyError,
    OverflowError,
    InvalidDocument,
    DocumentTooLarge,
    ZeroDivisionError,
)
OUTAGES: tuple[type[Exception], ...] = (
    AutoReconnect,
    NetworkTimeout,
    StoreUnavailable,
    ConnectionResetError,
    TimeoutError,
)


# Subscribers whose effects do not fold a document from a stream's first event.
STATELESS = frozenset({"audit_log", "fulfilment"})


class InjectedCrash(RuntimeError):
    """An injected failure of a kind no handler lists."""


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject, and how often."""

    seed: int = 0
    poison: float = 0.0
    outage: float = 0.0
    crash: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """`seed=1,poison=0.01,outage=0.02,crash=0.01` → a plan."""
        fields = dict(part.split("=", 1) for part in text.split(",") if part.strip())
        unknown = set(fields) - {"seed", "poison", "outage", "crash"}
        if unknown:
            raise ValueError(f"unknown fault injection settings: {', '.join(sorted(unknown))}")
        return cls(
            seed=int(fields.get("seed", 0)),
            poison=float(fields.get("poison", 0)),
            outage=float(fields.get("outage", 0)),
            crash=float(fields.get("crash", 0)),
        )

    def poisoned(self, subscriber: str, event: StoredEvent) -> bool:
        """Whether `event` is one `subscriber` can never apply (the same answer every time).

        A stream's first event is spared where it creates a document: every later event of
        that document would then fail too and be parked (rightly), and the run's proof is that
        exactly the injected events are parked.
        """
        if event.version == 1 and subscriber not in STATELESS:
            return False
        return self._draw(subscriber, event) < self.poison

    def poison_for(self, subscriber: str, event: StoredEvent) -> Exception:
        """The error a poisoned event raises (its family drawn from the same hash)."""
        family = POISONS[int(self._draw(subscriber, event, "family") * len(POISONS))]
        return family(f"injected poison: {event.type} at {event.token} for {subscriber}")

    def _draw(self, subscriber: str, event: StoredEvent, salt: str = "") -> float:
        key = f"{self.seed}:{subscriber}:{event.event_id}:{salt}".encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


@dataclass
class Injector:
    """Raises the plan's faults at the two points catch-up offers (see CatchUp.faults)."""

    plan: FaultPlan

    def before_run(self, subscriber: str) -> None:
        """Maybe crash a catch-up run before it reads anything."""
        if random.random() < self.plan.crash:
            raise InjectedCrash(f"injected crash of {subscriber}")

    def before_apply(self, subscriber: str, events: Sequence[StoredEvent]) -> None:
        """Maybe fail as an outage; always fail on a poisoned event."""
        if random.random() < self.plan.outage:
            raise random.choice(OUTAGES)(f"injected outage under {subscriber}")
        for event in events:
            if self.plan.poisoned(subscriber, event):
                raise self.plan.poison_for(subscriber, event)


def fault_plan(settings: Settings) -> Injector | None:
    """The faults `ORDERTRAIL_FAULT_INJECTION` asks for (test mode only), if any."""
    if not settings.fault_injection:
        return None
    if settings.environment != "test":
        raise RuntimeError("ORDERTRAIL_FAULT_INJECTION is only allowed with ORDERTRAIL_ENV=test")
    return Injector(FaultPlan.parse(settings.fault_injection))
