"""Sign-out revokes every token issued before it."""

from __future__ import annotations

import httpx
import jwt

from tests.fixtures.factories import account, login


async def test_logout_revokes_every_earlier_token(client: httpx.AsyncClient) -> None:
    """After sign-out, this token and another issued before it are 401; a new one works."""
    user, first = await account(client)
    second = await login(client, user["email"])
    assert (await client.get("/api/v1/me", headers=second)).status_code == 200
    out = await client.post("/api/v1/auth/logout", headers=first)
    assert out.status_code == 204
    for headers in (first, second):
        refused = await client.get("/api/v1/me", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_token"
    fresh = await login(client, user["email"])
    assert (await client.get("/api/v1/me", headers=fresh)).status_code == 200


async def test_token_carries_the_version(client: httpx.AsyncClient) -> None:
    """Tokens carry the user's token version; a forged other version is refused."""
    user, headers = await account(client)
    token = headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["ver"] == 0
    await client.post("/api/v1/auth/logout", headers=headers)
    fresh = await login(client, user["email"])
    fresh_claims = jwt.decode(
        fresh["Authorization"].removeprefix("Bearer "), options={"verify_signature": False}
    )
    assert fresh_claims["ver"] == 1


async def test_logout_needs_an_account(client: httpx.AsyncClient) -> None:
    """Without a token sign-out is a 401; a guest token is refused (guests hold no session)."""
    assert (await client.post("/api/v1/auth/logout")).status_code == 401
    guest = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    refused = await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {guest}"})
    assert refused.status_code == 403
