from __future__ import annotations

import httpx
import jwt
import pytest

from tests.fixtures.factories import (
    PASSWORD,
    account,
    create_product,
    login,
    product_body,
    register,
)


async def test_register_sign_in_and_me(client: httpx.AsyncClient) -> None:
    """A viewer registers, signs in with the password form and reads its profile."""
    user = await register(client, role="viewer", email="Aigerim@Example.KZ", locale="kk")
    assert user["email"] == "aigerim@example.kz"
    assert user["currency"] == "KZT"  # the locale's market currency
    headers = await login(client, "AIGERIM@example.kz")
    me = (await client.get("/api/v1/me", headers=headers)).json()
    assert me["id"] == user["id"] and me["role"] == "viewer" and me["locale"] == "kk"


async def test_merchant_gets_a_profile(client: httpx.AsyncClient) -> None:
    """Registering as a merchant creates the merchant profile that owns the catalog."""
    user, headers = await account(
        client, role="merchant", merchant_name="Khorgos Silk", currency="CNY"
    )
    me = (await client.get("/api/v1/me", headers=headers)).json()
    assert me["merchant"]["name"] == "Khorgos Silk"
    assert me["merchant"]["currency"] == "CNY"
    assert user["merchant"]["id"] == me["merchant"]["id"]


async def test_duplicate_email_is_a_conflict(client: httpx.AsyncClient) -> None:
    """The same email, in any letter case, cannot register twice."""
    await register(client, email="dup@example.kz")
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "DUP@example.kz", "password": PASSWORD, "display_name": "X", "role": "host"},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "admin"}, "role"),
        ({"password": ""}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"locale": "fr"}, "locale"),
        ({"currency": "XYZ"}, "currency"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_register_rejects_bad_input(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    """Bad sign-up fields are a 422 naming the field; admins cannot self-register."""
    payload = {
        "email": "new@example.kz",
        "password": PASSWORD,
        "display_name": "N",
        "role": "viewer",
        **body,
    }
    response = await client.post("/api/v1/auth/register", json=payload)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in [f["field"] for f in error["details"]["fields"]]


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    """Sign-in failures do not reveal whether the account exists."""
    user = await register(client)
    wrong = await client.post(
        "/api/v1/auth/token", data={"username": user["email"], "password": "wrong-password"}
    )
    unknown = await client.post(
        "/api/v1/auth/token", data={"username": "nobody@example.kz", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert wrong.headers["www-authenticate"] == "Bearer"


async def test_guest_token_watches_but_cannot_act(client: httpx.AsyncClient) -> None:
    """A guest token reads /me and the catalog, but is refused where an account is needed."""
    token = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    me = await client.get("/api/v1/me?locale=ru", headers=headers)
    assert me.status_code == 200
    assert me.json()["role"] == "guest" and me.json()["id"] is None
    assert me.json()["display_name"] == "Гость"
    assert (await client.get("/api/v1/products", headers=headers)).status_code == 200
    refused = await client.patch("/api/v1/me", json={"locale": "kk"}, headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "guest_not_allowed"


@pytest.mark.parametrize("token", ["garbage", "a.b.c"])
async def test_invalid_tokens_are_401(client: httpx.AsyncClient, token: str) -> None:
    """Malformed bearer tokens are refused with invalid_token, never a 500."""
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


async def test_expired_and_foreign_tokens_are_refused(client: httpx.AsyncClient) -> None:
    """A token past its expiry, or signed with another key, does not authenticate."""
    user = await register(client)
    secret = client._transport.app.state.settings.secret_key  # type: ignore[attr-defined]
    expired = jwt.encode(
        {"sub": str(user["id"]), "role": "viewer", "exp": 1_000_000}, secret, algorithm="HS256"
    )
    forged = jwt.encode(
        {"sub": str(user["id"]), "role": "admin", "exp": 4_000_000_000},
        "another-key-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    for token in (expired, forged):
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401


async def test_me_requires_a_token(client: httpx.AsyncClient) -> None:
    """/me without a token is 401 in the requested language."""
    response = await client.get("/api/v1/me", headers={"Accept-Language": "kk-KZ"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.json()["error"]["message"] != "Sign in to continue."


async def test_saved_locale_and_currency_apply_when_request_names_none(
    client: httpx.AsyncClient,
) -> None:
    """The user's saved locale and currency are used when the request gives neither."""
    _, headers = await account(client, role="viewer", locale="uz")
    await client.patch("/api/v1/me", json={"currency": "KZT"}, headers=headers)
    _, merchant_headers = await account(client, role="merchant", currency="CNY")
    product = await create_product(client, merchant_headers)
    seen = (await client.get(f"/api/v1/products/{product['id']}", headers=headers)).json()
    assert seen["title"] == "Namlovchi krem"
    assert seen["price"]["currency"] == "KZT"
    explicit = await client.get(
        f"/api/v1/products/{product['id']}?locale=ru&currency=RUB", headers=headers
    )
    assert explicit.json()["title"] == "Увлажняющий крем"
    assert explicit.json()["price"]["currency"] == "RUB"


@pytest.mark.parametrize("role", ["viewer", "host"])
async def test_only_merchants_create_products(client: httpx.AsyncClient, role: str) -> None:
    """Viewers and hosts are forbidden from catalog writes."""
    _, headers = await account(client, role=role)
    response = await client.post("/api/v1/products", json=product_body(), headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_guest_profile_follows_requested_currency(client: httpx.AsyncClient) -> None:
    """A guest's /me reports the negotiated currency."""
    token = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    me = await client.get("/api/v1/me?currency=USD", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["currency"] == "USD"
