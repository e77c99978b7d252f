"""The "events appended" dramatiq message, sent by name so the APIs need not import workers."""

from __future__ import annotations

import asyncio

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from core.settings import Settings
from eventstore.notify import Coalescer
from eventstore.positions import Position

QUEUE = "ordertrail"
APPENDED_ACTOR = "appended"
REBUILD_ACTOR = "rebuild_projection"
REPLAY_ACTOR = "replay_stream"


def create_broker(settings: Settings) -> RedisBroker:
    """A Redis broker with short socket timeouts: Redis being down must not stall a command."""
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
    )


def appended_message(position: Position) -> Message[None]:
    """The small message that says the store grew up to `position`."""
    return Message(
        queue_name=QUEUE,
        actor_name=APPENDED_ACTOR,
        args=(position.token,),
        kwargs={},
        options={},
    )


def job_message(actor: str, job_id: str, target: str) -> Message[None]:
    """The message that starts an ops job on some worker."""
    return Message(queue_name=QUEUE, actor_name=actor, args=(job_id, target), kwargs={}, options={})


# NOTIFY is the fast path; the dramatiq message reaches workers whose LISTEN is down (a tick
# would too, later). A few a second is plenty, and each costs a thread hop and a Redis script.
DRAMATIQ_INTERVAL = 0.2


def dramatiq_signal(settings: Settings, min_interval: float = DRAMATIQ_INTERVAL) -> Coalescer:
    """Sends `appended(token)` after commits, from a thread (the Redis client blocks)."""
    broker = create_broker(settings)

    async def send(position: Position) -> None:
        await asyncio.to_thread(broker.enqueue, appended_message(position))

    return Coalescer(send, "dramatiq", min_interval)
