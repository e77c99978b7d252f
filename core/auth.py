"""JWT bearer tokens: minting (CLI, dev stack) and verification (both APIs)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
SCOPES = ("commands:write", "queries:read", "ops:admin", "events:read")


class InvalidToken(Exception):
    """The token is missing, malformed, badly signed or expired."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, and what they may do."""

    subject: str
    scopes: frozenset[str]


def mint_token(secret: str, subject: str, scopes: list[str], ttl_seconds: int = 3600) -> str:
    """Sign a token for `subject` carrying `scopes`, valid for `ttl_seconds`."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}")
    now = int(time.time())
    claims = {"sub": subject, "scope": " ".join(scopes), "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str, leeway_seconds: int = 10) -> Principal:
    """Check signature and expiry; return the principal or raise InvalidToken."""
    principal, expires, not_before = _verified(token, secret)
    now = time.time()
    # Time is checked on every call: only the signature check and parsing are remembered.
    if now > expires + leeway_seconds:
        raise InvalidToken("Signature has expired")
    if not_before is not None and now < not_before - leeway_seconds:
        raise InvalidToken("The token is not yet valid (nbf)")
    return principal


@functools.lru_cache(maxsize=4096)
def _verified(token: str, secret: str) -> tuple[Principal, float, float | None]:
    """The signature-checked claims of a token (cached: a dashboard sends the same one often).

    Failures raise and so are never cached; the cache holds only tokens that were valid once.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp"], "verify_exp": False, "verify_nbf": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    subject, scope = claims.get("sub"), claims.get("scope", "")
    if not isinstance(subject, str) or not subject or not isinstance(scope, str):
        raise InvalidToken("sub and scope must be strings")
    expires, not_before = claims["exp"], claims.get("nbf")
    if not _number(expires) or (not_before is not None and not _number(not_before)):
        raise InvalidToken("exp and nbf must be numbers")
    return Principal(subject=subject, scopes=frozenset(scope.split())), expires, not_before


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
