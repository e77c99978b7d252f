"""A command run for a request: its answer, Idempotency-Key and If-Match, without HTTP."""

from __future__ import annotations

import json

import pytest
from fastapi.responses import JSONResponse

from command_api import handlers
from command_api.dispatch import CommandRunner
from core.auth import Principal
from domain import commands
from domain.errors import NotFound
from domain.values import product_id, stock_item_id
from eventstore.base import IdempotencyConflict
from eventstore.repository import PreconditionFailed
from tests.unit.scenario import Scenario, product


def runner(
    s: Scenario, key: str | None = None, fingerprint: str = "h", if_match: int | None = None
) -> CommandRunner:
    """What a request by alice with these headers contributes."""
    alice = Principal("alice", frozenset({"commands:write"}))
    return CommandRunner(s.repo, alice, {"actor": "alice"}, key, if_match, fingerprint)


def answer(response: JSONResponse) -> tuple[int, dict[str, object], str | None, str | None]:
    """Status, body, ETag and Idempotent-Replayed of a command's answer."""
    body = json.loads(bytes(response.body))
    return (
        response.status_code,
        body,
        response.headers["ETag"],
        response.headers.get("Idempotent-Replayed"),
    )


async def test_a_new_stream_is_201_then_200_with_version_and_position() -> None:
    s = Scenario()
    mug = str(product_id("MUG-1"))
    created = await runner(s).run(handlers.register_product, product("MUG-1"))
    body = {"id": mug, "version": 1, "position": s.store.events[-1].token}
    assert answer(created) == (201, body, '"1"', None)
    assert created.headers["X-Position"] == body["position"]
    rename = commands.RenameProduct(product_id("MUG-1"), "Cup")
    renamed = await runner(s).run(handlers.rename_product, rename)
    body = {"id": mug, "version": 2, "position": s.store.events[-1].token}
    assert answer(renamed) == (200, body, '"2"', None)


async def test_a_repeated_key_replays_the_first_answer_and_appends_nothing() -> None:
    s = Scenario()
    first = answer(await runner(s, "k").run(handlers.register_product, product("MUG-1")))
    again = answer(await runner(s, "k").run(handlers.register_product, product("MUG-1")))
    assert again == (*first[:3], "true")
    assert len(s.store.events) == 1
    with pytest.raises(IdempotencyConflict) as reused:
        await runner(s, "k", "another request").run(handlers.register_product, product("TEA-1"))
    assert reused.value.reason == "body_mismatch" and len(s.store.events) == 1


async def test_a_failed_command_does_not_keep_its_key() -> None:
    s = Scenario()
    receive = commands.ReceiveStock("MUG-1", 3)
    with pytest.raises(NotFound):
        await runner(s, "k").run(handlers.receive_stock, receive)
    await s.given(product("MUG-1"))
    status, body, _, replayed = answer(await runner(s, "k").run(handlers.receive_stock, receive))
    assert (status, body["id"], body["version"], replayed) == (
        201,
        str(stock_item_id("MUG-1")),
        2,
        None,
    )


async def test_if_match_reaches_the_repository() -> None:
    s = Scenario()
    await s.given(product("MUG-1"))
    rename = commands.RenameProduct(product_id("MUG-1"), "Cup")
    with pytest.raises(PreconditionFailed):
        await runner(s, if_match=2).run(handlers.rename_product, rename)
    assert answer(await runner(s, if_match=1).run(handlers.rename_product, rename))[0] == 200
