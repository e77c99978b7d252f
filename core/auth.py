"""JWT bearer tokens: minting (CLI, dev stack) and verification (both APIs).

Two ways to trust a token: HS256 with a shared secret (dev, tests, a single deployment) or the
public keys an identity provider publishes at a JWKS URL (RS256/ES256: Keycloak, Auth0, Entra
ID). Either way `aud` and `iss` are checked when configured, and scopes come from `scope` or
`scp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

ALGORITHM = "HS256"
SCOPES = ("commands:write", "queries:read", "ops:admin", "events:read")
# Asymmetric algorithms only: a JWKS verifier must never accept an HMAC token "signed" with a
# public key it published (the classic algorithm-confusion attack).
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

log = logging.getLogger(__name__)


class InvalidToken(Exception):
    """The token is missing, malformed, badly signed or expired."""


class KeysUnavailable(Exception):
    """No signing keys are known and the JWKS URL cannot be read (a dependency is down)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, and what they may do."""

    subject: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class Claims:
    """What a verifier checks besides the signature: audience, issuer, clock leeway."""

    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: int = 10


class TokenVerifier(Protocol):
    """Turns a bearer token into a principal, or raises InvalidToken / KeysUnavailable."""

    async def verify(self, token: str) -> Principal:
        """The principal behind `token`."""
        ...


def mint_token(secret: str, subject: str, scopes: list[str], ttl_seconds: int = 3600) -> str:
    """Sign a token for `subject` carrying `scopes`, valid for `ttl_seconds`."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}")
    now = int(time.time())
    claims = {"sub": subject, "scope": " ".join(scopes), "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(
    token: str, secret: str, leeway_seconds: int = 10, checks: Claims | None = None
) -> Principal:
    """Check an HS256 token's signature, expiry, audience and issuer; return its principal."""
    checks = checks or Claims(leeway_seconds=leeway_seconds)
    principal, expires, not_before = _verified_hs256(token, secret, checks.audience, checks.issuer)
    return _in_time(principal, expires, not_before, leeway_seconds)


@dataclass(frozen=True)
class SecretVerifier:
    """HS256 tokens signed with a shared secret."""

    secret: str
    checks: Claims = Claims()

    async def verify(self, token: str) -> Principal:
        """The principal behind `token` (no I/O)."""
        return verify_token(token, self.secret, self.checks.leeway_seconds, self.checks)


class JwksVerifier:
    """Tokens signed by an identity provider's keys, read from its JWKS URL.

    Keys are fetched with PyJWKClient (in a thread: it blocks) and kept `cache_seconds`. A token
    naming an unknown key id triggers a refetch, at most once per `refetch_seconds`, so a key
    rotated in at the provider is accepted within seconds and a flood of made-up key ids
    cannot turn into a flood of requests to the provider. If the provider cannot be reached,
    the keys already known stay in use; with none known, verification raises KeysUnavailable.
    """

    def __init__(
        self,
        url: str,
        checks: Claims = Claims(),
        *,
        cache_seconds: float = 300.0,
        refetch_seconds: float = 10.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.checks = url, checks
        self.cache_seconds, self.refetch_seconds = cache_seconds, refetch_seconds
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout_seconds)
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._generation = 0  # bumped by every successful fetch: cached verdicts name it
        self._fetched_at = -float("inf")  # last successful fetch
        self._tried_at = -float("inf")  # last attempt, successful or not
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._decoded = functools.lru_cache(maxsize=4096)(self._decode)

    async def verify(self, token: str) -> Principal:
        """The principal behind `token`; may fetch the key set (off the event loop)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        kid, algorithm = header.get("kid"), header.get("alg")
        if not isinstance(kid, str) or algorithm not in PUBLIC_KEY_ALGORITHMS:
            raise InvalidToken("a token needs a key id (kid) and a public-key algorithm")
        now = self._clock()
        due = now - self._tried_at >= self.refetch_seconds
        if kid not in self._keys:
            if due:
                await self._refresh(now)  # the caller waits: its key may have just rotated in
            elif not self._keys:
                raise KeysUnavailable(f"no signing keys from {self.url} yet")
        elif due and now - self._fetched_at > self.cache_seconds:
            # Stale but known keys keep working while the set is read again in the background:
            # no request waits on the provider, and a provider down leaves the API up.
            self._refresh_soon(now)
        if kid not in self._keys:
            raise InvalidToken("unknown signing key")
        principal, expires, not_before = self._decoded(token, kid, self._generation)
        return _in_time(principal, expires, not_before, self.checks.leeway_seconds)

    def _refresh_soon(self, wanted_at: float) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.create_task(self._refresh_quietly(wanted_at))

    async def _refresh_quietly(self, wanted_at: float) -> None:
        with contextlib.suppress(KeysUnavailable):  # a request that needs keys raises it itself
            await self._refresh(wanted_at)

    async def settled(self) -> None:
        """Wait for a background refresh under way, if any (tests, shutdown)."""
        if self._background is not None:
            await asyncio.wait([self._background])

    async def _refresh(self, wanted_at: float) -> None:
        async with self._lock:
            if self._tried_at >= wanted_at:
                return  # another request fetched (or failed to) while this one waited
            self._tried_at = self._clock()
            try:
                found = await asyncio.to_thread(self._client.get_jwk_set, True)
            except jwt.PyJWTError as exc:
                if not self._keys:
                    raise KeysUnavailable(f"cannot read signing keys from {self.url}") from exc
                log.warning(
                    "JWKS refresh failed, keeping %d known key(s): %s", len(self._keys), exc
                )
                return
            self._keys = {
                key.key_id: key
                for key in found.keys
                if key.key_id and key.public_key_use in (None, "sig")
            }
            self._generation += 1
            self._fetched_at = self._tried_at

    def _decode(
        self, token: str, kid: str, generation: int
    ) -> tuple[Principal, float, float | None]:
        """Signature-checked claims (cached per key-set generation: a refetch that drops a key
        stops its tokens at once)."""
        del generation  # part of the cache key only
        key = self._keys[kid]
        if key.algorithm_name not in PUBLIC_KEY_ALGORITHMS:
            raise InvalidToken("the signing key is not a public key")
        claims = _decode(token, key.key, key.algorithm_name, self.checks)
        return _principal(claims)


@functools.lru_cache(maxsize=4096)
def _verified_hs256(
    token: str, secret: str, audience: str | None, issuer: str | None
) -> tuple[Principal, float, float | None]:
    """The signature-checked claims of a token (cached: a dashboard sends the same one often).

    Failures raise and so are never cached; the cache holds only tokens that were valid once.
    """
    return _principal(_decode(token, secret, ALGORITHM, Claims(audience, issuer)))


def _decode(token: str, key: Any, algorithm: str, checks: Claims) -> dict[str, Any]:
    # Time is checked on every call by _in_time: only signature and identity are cached.
    required = [
        "sub",
        "exp",
        *(["aud"] if checks.audience else []),
        *(["iss"] if checks.issuer else []),
    ]
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=checks.audience,
            issuer=checks.issuer,
            options={
                "require": required,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_aud": checks.audience is not None,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc


def _principal(claims: dict[str, Any]) -> tuple[Principal, float, float | None]:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("sub must be a non-empty string")
    scopes = scopes_of(claims)
    expires, not_before = claims["exp"], claims.get("nbf")
    if not _number(expires) or (not_before is not None and not _number(not_before)):
        raise InvalidToken("exp and nbf must be numbers")
    return Principal(subject=subject, scopes=scopes), expires, not_before


def scopes_of(claims: dict[str, Any]) -> frozenset[str]:
    """Scopes from `scope` (OAuth 2: space-separated) or `scp` (Entra ID, Okta: string or list)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            found.update(value)
        else:
            raise InvalidToken(f"{name} must be a string or a list of strings")
    return frozenset(found)


def _in_time(
    principal: Principal, expires: float, not_before: float | None, leeway_seconds: int
) -> Principal:
    now = time.time()
    if now > expires + leeway_seconds:
        raise InvalidToken("Signature has expired")
    if not_before is not None and now < not_before - leeway_seconds:
        raise InvalidToken("The token is not yet valid (nbf)")
    return principal


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
