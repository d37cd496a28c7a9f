"""Password policy on sign-up: long enough and not a common password."""

from __future__ import annotations

import httpx
import pytest

from livecommerce.accounts.passwords import DEFAULT_MIN_LENGTH, check_password, common_passwords
from livecommerce.demo.seed import DEMO_ACCOUNTS
from tests.fixtures.factories import PASSWORD, account, login


def _body(password: str) -> dict[str, str]:
    return {"email": "new@example.kz", "password": password, "display_name": "N", "role": "viewer"}


@pytest.mark.parametrize("password", ["12345678", "short", "abcdefghi"])
async def test_short_password_refused(client: httpx.AsyncClient, password: str) -> None:
    """A password under the minimum length is a 422 password_too_short, in the locale."""
    response = await client.post("/api/v1/auth/register?locale=en", json=_body(password))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "password_too_short"
    assert error["details"] == {"field": "password", "min_length": 10}
    assert "10" in error["message"]


@pytest.mark.parametrize("password", ["1234567890", "qwertyuiop", "Password123", "PASSWORD12"])
async def test_common_password_refused(client: httpx.AsyncClient, password: str) -> None:
    """A common password, in any letter case, is a 422 password_too_common."""
    response = await client.post("/api/v1/auth/register?locale=ru", json=_body(password))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "password_too_common"
    assert error["message"] != "This password is too common. Choose one that is harder to guess."


async def test_good_password_accepted(client: httpx.AsyncClient) -> None:
    """A long, uncommon password registers."""
    response = await client.post("/api/v1/auth/register", json=_body(PASSWORD))
    assert response.status_code == 201


def test_list_is_loaded_lower_case() -> None:
    """The shipped list holds thousands of entries, compared lower-cased."""
    passwords = common_passwords()
    assert len(passwords) > 10_000
    assert {"password", "12345678", "1234567890"} <= passwords
    assert all(p == p.lower() for p in passwords)


def test_demo_and_fixture_passwords_pass() -> None:
    """The demo seed and the test factories register with passwords the policy accepts."""
    for demo in DEMO_ACCOUNTS:
        check_password(demo.password, min_length=DEFAULT_MIN_LENGTH)
    check_password(PASSWORD, min_length=DEFAULT_MIN_LENGTH)


async def test_password_change_applies_policy_and_revokes(client: httpx.AsyncClient) -> None:
    """A password change needs the current password, obeys the policy, signs out every
    earlier token and answers a new one; the new password signs in, the old does not."""
    user, headers = await account(client)
    url = "/api/v1/me/password?locale=en"
    wrong = await client.post(
        url,
        json={"current_password": "not-it-at-all", "new_password": "a-new-long-secret"},
        headers=headers,
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "wrong_password"
    common = await client.post(
        url, json={"current_password": PASSWORD, "new_password": "qwertyuiop"}, headers=headers
    )
    assert common.status_code == 422
    assert common.json()["error"]["code"] == "password_too_common"
    changed = await client.post(
        url,
        json={"current_password": PASSWORD, "new_password": "a-new-long-secret"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    assert (await client.get("/api/v1/me", headers=fresh)).status_code == 200
    old = await client.post(
        "/api/v1/auth/token", data={"username": user["email"], "password": PASSWORD}
    )
    assert old.status_code == 401
    await login(client, user["email"], "a-new-long-secret")
