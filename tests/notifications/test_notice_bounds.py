"""The notices page takes only the ``after`` figures its 32-bit ``seq`` column can hold."""

from __future__ import annotations

import httpx

from tests.fixtures.factories import account


async def test_after_past_the_seq_column_is_a_validation_error(
    client: httpx.AsyncClient,
) -> None:
    """``after`` up to 2^31-1 is an empty page; one past it is the usual 422, never a 500
    from a number PostgreSQL's integer column cannot compare with."""
    _, headers = await account(client)
    largest = 2**31 - 1
    page = await client.get(f"/api/v1/me/notifications?after={largest}", headers=headers)
    assert page.status_code == 200, page.text
    assert page.json() == {"items": [], "last_seq": largest}
    for after in (2**31, 25896227296, 2**62):
        refused = await client.get(f"/api/v1/me/notifications?after={after}", headers=headers)
        assert refused.status_code == 422, refused.text
        [field] = refused.json()["error"]["details"]["fields"]
        assert (field["field"], field["code"]) == ("query.after", "less_than_equal")
