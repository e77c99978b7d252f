"""Tokens from an identity provider: RS256/ES256 keys read from a JWKS URL served by the test.

The provider is a real HTTP server on loopback whose key set the tests change (rotation); the
query API checks the tokens with its real verifier, against a real MongoDB-wire server.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.auth import Claims, InvalidToken, JwksVerifier, KeysUnavailable
from core.settings import Settings
from query_api.app import create_app as create_query_app
from tests.support.servers import asgi_client

AUDIENCE, ISSUER = "ordertrail", "https://idp.test/realms/shop"
NOBODY = f"/api/v1/products/{uuid.uuid4()}"  # a route needing queries:read; 404 once admitted


class Provider:
    """A key set served at http://127.0.0.1:<port>/jwks, changeable and counting its fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0
        self.up = True
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                if not provider.up:
                    self.send_error(503)
                    return
                jwks = [
                    jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key(), True)
                    | {"kid": kid, "use": "sig", "alg": alg}
                    for kid, (key, alg) in provider.keys.items()
                ]
                body = json.dumps({"keys": jwks}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"

    def publish(self, kid: str, key: Any, alg: str) -> None:
        """Add a signing key to the set."""
        self.keys[kid] = (key, alg)


@pytest.fixture
def provider() -> Iterator[Provider]:
    """An identity provider's JWKS endpoint on loopback."""
    served = Provider()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()


RSA_A = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_ROTATED = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_B = ec.generate_private_key(ec.SECP256R1())


def token(key: Any, kid: str | None, alg: str = "RS256", **claims: Any) -> str:
    """A token as the provider would sign it (audience, issuer and a scope by default)."""
    now = int(time.time())
    body = {"sub": "dash", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 600}
    body |= {"scope": "queries:read"} | claims
    headers = {"kid": kid} if kid else {}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, alg, headers=headers)


def bearer(value: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
async def idp_query(
    read_settings: Settings, provider: Provider
) -> AsyncIterator[httpx.AsyncClient]:
    """The query API trusting the provider (no shared secret at all), against real MongoDB."""
    update = {
        "environment": "prod",
        "jwt_secret": None,
        "jwt_jwks_url": provider.url,
        "jwt_audience": AUDIENCE,
        "jwt_issuer": ISSUER,
        "jwt_jwks_refetch_seconds": 0.0,
    }
    app = create_query_app(read_settings.model_copy(update=update))
    async with asgi_client(app, "http://query-api") as client:
        yield client


async def test_provider_tokens_are_checked_for_signature_audience_issuer_and_scope(
    idp_query: httpx.AsyncClient, provider: Provider
) -> None:
    """RS256 and ES256 keys both work; a wrong aud/iss, a missing scope or key is refused."""
    provider.publish("a", RSA_A, "RS256")
    provider.publish("b", EC_B, "ES256")
    admitted = [
        token(RSA_A, "a"),
        token(EC_B, "b", "ES256"),
        token(RSA_A, "a", scope=None, scp="queries:read"),  # Entra ID's claim
        token(RSA_A, "a", scope=None, scp=["openid", "queries:read"]),  # Okta's list
    ]
    for value in admitted:
        response = await idp_query.get(NOBODY, headers=bearer(value))
        assert response.status_code == 404, response.text
    refused = [
        token(RSA_A, "a", aud="someone-else"),
        token(RSA_A, "a", aud=None),
        token(RSA_A, "a", iss="https://evil.test"),
        token(RSA_A, "a", exp=int(time.time()) - 3600),
        token(EC_B, "a", "ES256"),  # signed by b's key under a's id
        token(RSA_A, None),  # no key id
        token(RSA_ROTATED, "never-published"),
    ]
    for value in refused:
        response = await idp_query.get(NOBODY, headers=bearer(value))
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
    scopeless = await idp_query.get(NOBODY, headers=bearer(token(RSA_A, "a", scope="ops:admin")))
    assert scopeless.status_code == 403


async def test_an_hmac_token_signed_with_the_public_key_is_refused(
    idp_query: httpx.AsyncClient, provider: Provider
) -> None:
    """Algorithm confusion: HS256 keyed with the published PEM must not pass as the provider's."""
    provider.publish("a", RSA_A, "RS256")
    pem = RSA_A.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {"sub": "x", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 60, "scope": "queries:read"}
    # PyJWT refuses to sign with a PEM as an HMAC secret, so the signature is made by hand.
    forged = _hs256_by_hand(claims, pem, kid="a")
    assert (await idp_query.get(NOBODY, headers=bearer(forged))).status_code == 401
    assert (await idp_query.get(NOBODY, headers=bearer(token(RSA_A, "a")))).status_code == 404


def _hs256_by_hand(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


async def test_a_key_rotated_in_is_accepted_after_the_refetch(
    idp_query: httpx.AsyncClient, provider: Provider
) -> None:
    """A token by a key the API has not seen makes it refetch; unknown after that is 401."""
    provider.publish("a", RSA_A, "RS256")
    assert (await idp_query.get(NOBODY, headers=bearer(token(RSA_A, "a")))).status_code == 404
    rotated = token(RSA_ROTATED, "2027-01")
    assert (await idp_query.get(NOBODY, headers=bearer(rotated))).status_code == 401
    fetches = provider.fetches
    provider.publish("2027-01", RSA_ROTATED, "RS256")  # the provider rotates its key in
    assert (await idp_query.get(NOBODY, headers=bearer(rotated))).status_code == 404
    assert provider.fetches == fetches + 1
    # Known keys need no fetch: the next hundred requests cost the provider nothing.
    for _ in range(100):
        assert (await idp_query.get(NOBODY, headers=bearer(rotated))).status_code == 404
    assert provider.fetches == fetches + 1


async def test_made_up_key_ids_cannot_flood_the_provider(provider: Provider) -> None:
    """Unknown key ids refetch at most once per refetch interval."""
    provider.publish("a", RSA_A, "RS256")
    now = [1000.0]
    verifier = JwksVerifier(
        provider.url, Claims(AUDIENCE, ISSUER), refetch_seconds=10, clock=lambda: now[0]
    )
    assert (await verifier.verify(token(RSA_A, "a"))).subject == "dash"
    for n in range(50):
        with pytest.raises(InvalidToken):
            await verifier.verify(token(RSA_A, f"made-up-{n}"))
    assert provider.fetches == 1  # read for "a" within the interval: no refetch for the rest
    now[0] += 11
    with pytest.raises(InvalidToken):
        await verifier.verify(token(RSA_A, "made-up-again"))
    assert provider.fetches == 2


async def test_keys_are_refetched_when_stale_and_kept_while_the_provider_is_down(
    provider: Provider,
) -> None:
    """After cache_seconds the set is read again; a failed read keeps the keys already known."""
    provider.publish("a", RSA_A, "RS256")
    now = [0.0]
    verifier = JwksVerifier(
        provider.url, Claims(AUDIENCE, ISSUER), cache_seconds=300, clock=lambda: now[0]
    )
    assert (await verifier.verify(token(RSA_A, "a"))).subject == "dash"
    provider.up, now[0] = False, 301.0
    # Stale: answered at once from the known keys, and read again in the background.
    assert (await verifier.verify(token(RSA_A, "a"))).subject == "dash"
    await verifier.settled()
    assert provider.fetches == 2
    assert (await verifier.verify(token(RSA_A, "a"))).subject == "dash"  # the read failed: kept
    # Back up, with "a" retired: once the set is read again, a's tokens stop at once.
    provider.up, now[0] = True, 700.0
    provider.keys.pop("a")
    provider.publish("b", EC_B, "ES256")
    await verifier.verify(token(RSA_A, "a"))  # still known: this call starts the read
    await verifier.settled()
    assert provider.fetches == 3
    with pytest.raises(InvalidToken):
        await verifier.verify(token(RSA_A, "a"))
    assert (await verifier.verify(token(EC_B, "b", "ES256"))).subject == "dash"


async def test_no_known_keys_and_the_provider_down_is_503(
    idp_query: httpx.AsyncClient, provider: Provider
) -> None:
    """A dependency down is 503 with Retry-After, not 401 (the token may be fine)."""
    provider.publish("a", RSA_A, "RS256")
    provider.up = False
    response = await idp_query.get(NOBODY, headers=bearer(token(RSA_A, "a")))
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]
    provider.up = True
    assert (await idp_query.get(NOBODY, headers=bearer(token(RSA_A, "a")))).status_code == 404


async def test_a_verifier_with_no_keys_at_all_raises_keys_unavailable() -> None:
    """Nothing listening at the URL: KeysUnavailable, which the APIs answer with 503."""
    verifier = JwksVerifier("http://127.0.0.1:9/jwks", timeout_seconds=1)
    with pytest.raises(KeysUnavailable):
        await verifier.verify(token(RSA_A, "a"))
