"""Runs one command for one HTTP request: idempotency, If-Match, metadata, the response."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from command_api.handlers import Handler
from core import tracing
from core.auth import Principal
from core.http import authorize, bearer_token, read_headers, request_id
from core.logging import bind
from core.metrics import COMMANDS, labelled
from core.openapi import documents, header, model_headers
from eventstore.base import (
    AlreadyAnswered,
    IdempotencyClaim,
    IdempotencyConflict,
    IdempotencyKey,
    StoredResponse,
)
from eventstore.records import StoreUnavailable
from eventstore.repository import Context, Outcome, Repository


class CommandAnswer(JSONResponse):
    """A command's JSON answer: the bytes JSONResponse writes, rendered by orjson (faster)."""

    def render(self, content: Any) -> bytes:
        """Compact UTF-8 JSON."""
        return orjson.dumps(content)


@dataclass
class CommandRunner:
    """Everything one request contributes to running its command."""

    repo: Repository
    principal: Principal
    metadata: dict[str, Any]
    idempotency_key: str | None
    expected_version: int | None
    request_hash: str

    async def run(self, handler: Handler, command: object) -> JSONResponse:
        """Run `command` through `handler` and answer as DESIGN §6 says.

        A keyed command is decided first and its append takes the key (one statement); a key
        answered already makes the append insert nothing, and its stored answer is replayed.
        """
        key = None
        if self.idempotency_key is not None:
            key = IdempotencyKey(self.principal.subject, self.idempotency_key, self.request_hash)
        context = Context(
            self.metadata,
            self.expected_version,
            key,
            respond=stored_answer,
            respond_by_token=True,  # tests/unit/test_stored_answer.py holds it to that
        )
        name = type(command).__name__
        try:
            outcome = await handler(command, self.repo, context)
        except AlreadyAnswered as answered:
            return Answer.from_stored(answered.response).response(replayed=True)
        except Exception as exc:
            labelled(COMMANDS, name, type(exc).__name__).inc()
            # A repeat of a command that succeeded may now be refused (its order placed, its
            # version gone by): the key's stored answer, if it has one, is the answer.
            if key is not None and not isinstance(exc, _NOT_REFUSALS):
                stored = await earlier_answer(self.repo, key)
                if stored is not None:
                    return Answer.from_stored(stored).response(replayed=True)
            raise
        except BaseException as exc:
            labelled(COMMANDS, name, type(exc).__name__).inc()
            raise
        labelled(COMMANDS, name, "ok").inc()
        # The access line logged as the answer goes out names what was written.
        bind(stream_id=str(outcome.stream_id), position=outcome.position and outcome.position.token)
        return answer(outcome).response()


# Failures that are not the command's refusal: the store down, or the key's own conflict.
_NOT_REFUSALS = (StoreUnavailable, IdempotencyConflict)


async def earlier_answer(repo: Repository, key: IdempotencyKey) -> StoredResponse | None:
    """The stored answer of an earlier request with `key`, or None if there is none (or the
    store cannot say); IdempotencyConflict if the key is in flight or came with another body."""
    try:
        taken = await repo.store.claim_idempotency(key.actor, key.key, key.request_hash)
    except StoreUnavailable:
        return None
    if isinstance(taken, IdempotencyClaim):  # no earlier answer: leave the key free again
        await release_quietly(repo, taken)
        return None
    return taken


async def release_quietly(repo: Repository, claim: IdempotencyClaim) -> None:
    """Release a claim; if the store is down its lock simply expires, so don't mask the error."""
    with contextlib.suppress(StoreUnavailable):
        await repo.store.release_idempotency(claim)


@dataclass(frozen=True)
class Answer:
    """A command's HTTP answer: what its client gets, and what a repeat of its key replays."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    def stored(self) -> StoredResponse:
        """The answer as the event store keeps it (migration 0002 wrote older records so too)."""
        return {"status": self.status, "body": self.body, "headers": self.headers}

    @classmethod
    def from_stored(cls, stored: StoredResponse) -> Answer:
        """The answer a stored response holds."""
        return cls(int(stored["status"]), stored["body"], stored["headers"])

    def response(self, replayed: bool = False) -> JSONResponse:
        """The HTTP response; a replay is marked as one."""
        headers = {**self.headers, "Idempotent-Replayed": "true"} if replayed else self.headers
        return CommandAnswer(self.body, self.status, headers)


def answer(outcome: Outcome) -> Answer:
    """201 for a new stream, else 200; the body and headers of DESIGN §6."""
    token = outcome.position.token if outcome.position else None
    body = {"id": str(outcome.stream_id), "version": outcome.version, "position": token}
    headers = {"ETag": f'"{outcome.version}"'}
    if token is not None:
        headers["X-Position"] = token
    return Answer(201 if outcome.created else 200, body, headers)


def stored_answer(outcome: Outcome) -> StoredResponse:
    """The answer to `outcome` as the event store keeps it with the append."""
    return answer(outcome).stored()


def request_hash(method: str, path: str, body: bytes, expected_version: int | None = None) -> str:
    """Fingerprint of a request: a repeated key must come with the same request.

    If-Match is part of the request: the same body at another expected version asks for
    something else (`"3"` and `W/"3"` name the same version, so it enters as that number).
    """
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    # Appended only when given, so the fingerprints of requests without If-Match, stored
    # before it counted, still match their repeats.
    if_match = "" if expected_version is None else f"\nIf-Match: {expected_version}"
    return hashlib.sha256(f"{method} {path}\n{canonical}{if_match}".encode()).hexdigest()


TOKEN_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
IF_MATCH_PATTERN = r'^(W/)?"\d{1,9}"$'


class CommandHeaders(BaseModel):
    """The headers any command may carry, validated together (a 422 names the header)."""

    model_config = ConfigDict(extra="ignore")

    idempotency_key: str | None = Field(None, alias="Idempotency-Key", min_length=1, max_length=255)
    if_match: str | None = Field(None, alias="If-Match", pattern=IF_MATCH_PATTERN)
    correlation_id: str | None = Field(None, alias="X-Correlation-ID", pattern=TOKEN_PATTERN)
    causation_id: str | None = Field(None, alias="X-Causation-ID", pattern=TOKEN_PATTERN)


@documents(
    parameters=model_headers(CommandHeaders),
    bearer=True,
    success_headers={
        "ETag": header("The stream's version after the command", '"3"'),
        "X-Position": header(
            "The position token of the command's last event: send it as X-Min-Position to "
            "the query API to read your own write"
        ),
        "Idempotent-Replayed": header(
            "`true` when this is the stored answer of an earlier request with the same "
            "Idempotency-Key (nothing was appended again)",
            "true",
        ),
    },
)
async def command_runner(request: Request) -> CommandRunner:
    """Collect the request's part of a command: who, which key, which version, which ids.

    Read straight from the request: FastAPI's resolution of a dependency per header and one
    for the bearer scheme was a third of a command's CPU time.
    """
    principal = await authorize(request, bearer_token(request), "commands:write")
    headers = read_headers(CommandHeaders, request)
    repo: Repository = request.app.state.repository
    rid = request_id(request)
    metadata = {
        "actor": principal.subject,
        "request_id": rid,
        "correlation_id": headers.correlation_id or rid,
        "causation_id": headers.causation_id or rid,
    }
    bind(
        actor=principal.subject,
        correlation_id=metadata["correlation_id"],
        causation_id=metadata["causation_id"],
    )
    tracing.inject(metadata)  # the worker's spans for these events join this request's trace
    key = headers.idempotency_key
    if key is not None:
        metadata["idempotency_key"] = key
    if_match = headers.if_match
    expected = int(if_match.removeprefix("W/").strip('"')) if if_match else None
    # Only a keyed request is ever compared with another: the others need no fingerprint.
    fingerprint = ""
    if key is not None:
        body = await request.body()
        fingerprint = request_hash(request.method, request.url.path, body, expected)
    return CommandRunner(repo, principal, metadata, key, expected, fingerprint)


CommandDep = Annotated[CommandRunner, Depends(command_runner)]
