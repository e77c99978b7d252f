"""The dramatiq messages the processes exchange, sent by name so no sender imports an actor.

Neither the APIs nor the base layer import `workers`; the event store is not imported either:
a message carries a position as its token string.
"""

from __future__ import annotations

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

QUEUE = "ordertrail"
APPENDED_ACTOR = "appended"
REBUILD_ACTOR = "rebuild_projection"
REPLAY_ACTOR = "replay_stream"
RETRY_ACTOR = "retry_parked"


def create_broker(redis_url: str) -> RedisBroker:
    """A Redis broker with short socket timeouts: Redis being down must not stall a command."""
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
    )


def appended_message(token: str) -> Message[None]:
    """The small message that says the store grew up to the position `token`."""
    return Message(
        queue_name=QUEUE, actor_name=APPENDED_ACTOR, args=(token,), kwargs={}, options={}
    )


def job_message(actor: str, job_id: str, target: str) -> Message[None]:
    """The message that starts an ops job on some worker."""
    return Message(queue_name=QUEUE, actor_name=actor, args=(job_id, target), kwargs={}, options={})
