"""Verified tokens are remembered, but expiry and the secret are checked on every call."""

from __future__ import annotations

import pytest

from core.auth import InvalidToken, mint_token, verify_token

# HS256 wants keys of at least 32 bytes.
SECRET, OLD, NEW = "s" * 32, "o" * 32, "n" * 32


def test_a_remembered_token_still_expires() -> None:
    """Cached after a first success, an expired token is refused once outside the leeway."""
    token = mint_token(SECRET, "alice", ["queries:read"], ttl_seconds=-5)
    assert verify_token(token, SECRET, leeway_seconds=10).subject == "alice"
    with pytest.raises(InvalidToken):
        verify_token(token, SECRET, leeway_seconds=0)


def test_a_remembered_token_is_not_valid_under_another_secret() -> None:
    """The cache is keyed by the secret too: rotating it invalidates every token at once."""
    token = mint_token(OLD, "alice", ["queries:read"])
    assert verify_token(token, OLD).scopes == frozenset({"queries:read"})
    with pytest.raises(InvalidToken):
        verify_token(token, NEW)


def test_a_bad_signature_is_refused_every_time() -> None:
    """Failures are never cached as successes."""
    token = mint_token(SECRET, "alice", ["queries:read"])
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verify_token(forged, SECRET)
