"""A validly signed token whose subject is no user id is a 401 like any bad token, never a
500 (SQLite cannot bind an integer of 2^63 or more; PostgreSQL's ids are 32-bit)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from livecommerce.accounts.security import create_token
from tests.orders.shop import ALMATY


@pytest.mark.parametrize(
    "subject",
    [str(2**63), str(2**64 + 5), str(2**31), "0", "00", "1" * 5000, "²", "٣"],
)
async def test_signed_token_with_an_out_of_range_subject_is_401(
    app: FastAPI, lenient: httpx.AsyncClient, subject: str
) -> None:
    """/me and an order (the front door reads the token too) answer 401 invalid_token."""
    token, _ = create_token(
        secret=app.state.settings.resolved_secret_key(),
        subject=subject,
        role="viewer",
        lifetime=timedelta(minutes=5),
    )
    headers = {"Authorization": f"Bearer {token}", "Accept-Language": "en"}
    me = await lenient.get("/api/v1/me", headers=headers)
    assert me.status_code == 401, me.text
    placed = await lenient.post(
        "/api/v1/orders",
        json={
            "items": [{"product_id": 1, "quantity": 1}],
            "ship_to": ALMATY,
            "payment_method": "cod",
        },
        headers=headers,
    )
    assert placed.status_code == 401, placed.text
