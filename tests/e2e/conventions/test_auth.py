"""DESIGN §6 auth: missing, invalid or expired credentials are 401; a wrong scope is 403."""

from __future__ import annotations

import httpx
import jwt
import pytest

from core.auth import mint_token
from domain.values import product_id
from tests.e2e.conventions.helpers import Auth, product_body
from tests.e2e.helpers import PRODUCTS, events_of, new_sku, register, stream_url, types_of


def _bad_credentials() -> dict[str, dict[str, str]]:
    now = 1_700_000_000
    no_sub = jwt.encode({"scope": "commands:write ops:admin", "exp": 2**40}, "k" * 32, "HS256")
    return {
        "missing": {},
        "scheme-only": {"Authorization": "Bearer"},
        "basic-scheme": {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        "not-a-jwt": {"Authorization": "Bearer not-a-jwt"},
        "bad-signature": {
            "Authorization": "Bearer "
            + mint_token(
                "some-other-secret-" + "x" * 32, "mallory", ["commands:write", "ops:admin"]
            )
        },
        "unsigned": {
            "Authorization": "Bearer "
            + jwt.encode(
                {"sub": "mallory", "scope": "commands:write ops:admin", "exp": 2**40},
                key="",
                algorithm="none",
            )
        },
        "foreign-no-sub": {"Authorization": f"Bearer {no_sub}"},
        "foreign-expired": {
            "Authorization": "Bearer "
            + jwt.encode({"sub": "a", "scope": "commands:write", "exp": now}, "k" * 32, "HS256")
        },
    }


BAD_CREDENTIALS = _bad_credentials()


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
async def test_command_route_refuses_bad_credentials_with_401(
    api: httpx.AsyncClient, admin: dict[str, str], case: str
) -> None:
    sku = new_sku()
    response = await api.post(PRODUCTS, json=product_body(sku), headers=BAD_CREDENTIALS[case])
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "detail" in response.json()
    assert await events_of(api, admin, product_id(sku)) == []


@pytest.mark.parametrize("case", sorted(BAD_CREDENTIALS))
async def test_ops_route_refuses_bad_credentials_with_401(
    api: httpx.AsyncClient, auth: Auth, case: str
) -> None:
    product = await register(api, auth())
    response = await api.get(stream_url(product["id"]), headers=BAD_CREDENTIALS[case])
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_expired_token_is_401(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    sku = new_sku()
    expired = auth("commands:write", "ops:admin", ttl=-3600)
    response = await api.post(PRODUCTS, json=product_body(sku), headers=expired)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await events_of(api, admin, product_id(sku)) == []

    stream = await api.get(stream_url(product_id(sku)), headers=expired)
    assert stream.status_code == 401
    assert stream.headers["WWW-Authenticate"].startswith("Bearer")


async def test_token_within_its_lifetime_is_accepted(api: httpx.AsyncClient, auth: Auth) -> None:
    response = await api.post(PRODUCTS, json=product_body(), headers=auth(ttl=60))
    assert response.status_code == 201


async def test_wrong_scope_is_403(
    api: httpx.AsyncClient, auth: Auth, admin: dict[str, str]
) -> None:
    reader = auth("queries:read", sub="reader")
    sku = new_sku()
    response = await api.post(PRODUCTS, json=product_body(sku), headers=reader)
    assert response.status_code == 403, response.text
    assert "detail" in response.json()
    assert await events_of(api, admin, product_id(sku)) == []

    product = await register(api, auth())
    renamed = await api.post(
        f"{PRODUCTS}/{product['id']}/rename", json={"name": "X"}, headers=reader
    )
    assert renamed.status_code == 403
    assert await types_of(api, admin, product["id"]) == ["ProductRegistered"]

    assert (await api.get(stream_url(product["id"]), headers=reader)).status_code == 403
    # commands:write does not open the ops routes, ops:admin does not allow commands
    assert (await api.get(stream_url(product["id"]), headers=auth())).status_code == 403
    ops_only = auth("ops:admin")
    assert (await api.post(PRODUCTS, json=product_body(), headers=ops_only)).status_code == 403
    assert (await api.get(stream_url(product["id"]), headers=ops_only)).status_code == 200
