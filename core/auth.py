"""JWT bearer tokens: minting (CLI, dev stack) and verification (both APIs)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"
SCOPES = ("commands:write", "queries:read", "ops:admin")


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
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=leeway_seconds,
            options={"require": ["sub", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    subject, scope = claims.get("sub"), claims.get("scope", "")
    if not isinstance(subject, str) or not subject or not isinstance(scope, str):
        raise InvalidToken("sub and scope must be strings")
    return Principal(subject=subject, scopes=frozenset(scope.split()))
