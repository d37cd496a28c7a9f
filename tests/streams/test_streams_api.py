"""Streams over REST: who may drive a stream, its lifecycle, pins and their errors."""

from __future__ import annotations

import httpx

from tests.fixtures.factories import account, create_product
from tests.fixtures.hosts import link_host

TITLE = {"ru": "Вечерний эфир", "kk": "Кешкі эфир", "uz": "Kechki efir"}


async def test_host_linked_to_a_merchant_runs_a_stream(client: httpx.AsyncClient) -> None:
    """A linked host creates, starts and ends a stream; lists and details follow its status."""
    _, merchant_headers = await account(client, role="merchant")
    host, host_headers = await account(client, role="host")
    await link_host(client, merchant_headers, host, host_headers)
    created = await client.post(
        "/api/v1/streams?locale=kk",
        json={"title": TITLE, "languages": ["kk", "ru"]},
        headers=host_headers,
    )
    assert created.status_code == 201, created.text
    stream = created.json()
    assert stream["status"] == "scheduled"
    assert stream["title"] == "Кешкі эфир"
    assert stream["host_id"] == host["id"] and stream["languages"] == ["kk", "ru"]
    sid = stream["id"]
    assert (await client.post(f"/api/v1/streams/{sid}/start", headers=host_headers)).json()[
        "status"
    ] == "live"
    live = (await client.get("/api/v1/streams?status=live")).json()
    assert [s["id"] for s in live["items"]] == [sid]
    detail = (await client.get(f"/api/v1/streams/{sid}?locale=uz")).json()
    assert detail["title"] == "Kechki efir"
    epoch = detail["stats"].pop("epoch")
    assert isinstance(epoch, str) and epoch  # of the room's history (docs/protocol.md)
    assert detail["stats"] == {
        "viewer_count": 0,
        "peak_viewers": 0,
        "chat_messages": 0,
        "last_seq": 1,
        "sales": None,  # until the worker's first rollup (tests/streams/test_rollup.py)
    }
    ended = await client.post(f"/api/v1/streams/{sid}/end", headers=merchant_headers)
    assert ended.json()["status"] == "ended"
    again = await client.post(f"/api/v1/streams/{sid}/end", headers=merchant_headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_stream_transition"


async def test_only_the_host_merchant_or_admin_drive_a_stream(client: httpx.AsyncClient) -> None:
    """Another host, another merchant and viewers get 403; an unlinked host cannot create."""
    _, merchant_headers = await account(client, role="merchant")
    created = await client.post("/api/v1/streams", json={"title": TITLE}, headers=merchant_headers)
    sid = created.json()["id"]
    for role in ("host", "merchant", "viewer"):
        _, headers = await account(client, role=role)
        response = await client.post(f"/api/v1/streams/{sid}/start", headers=headers)
        assert response.status_code == 403, role
    _, lonely_host = await account(client, role="host")
    refused = await client.post("/api/v1/streams", json={"title": TITLE}, headers=lonely_host)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "merchant_required"
    guest = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    as_guest = await client.post(
        "/api/v1/streams", json={"title": TITLE}, headers={"Authorization": f"Bearer {guest}"}
    )
    assert as_guest.status_code == 403


async def test_pins_need_a_live_stream_and_an_own_product(client: httpx.AsyncClient) -> None:
    """Pinning before going live is 409; another merchant's product is 404; null unpins."""
    _, headers = await account(client, role="merchant")
    _, other = await account(client, role="merchant")
    mine = await create_product(client, headers)
    theirs = await create_product(client, other)
    sid = (await client.post("/api/v1/streams", json={"title": TITLE}, headers=headers)).json()[
        "id"
    ]
    early = await client.post(
        f"/api/v1/streams/{sid}/pins", json={"product_id": mine["id"]}, headers=headers
    )
    assert early.status_code == 409 and early.json()["error"]["code"] == "stream_not_live"
    await client.post(f"/api/v1/streams/{sid}/start", headers=headers)
    foreign = await client.post(
        f"/api/v1/streams/{sid}/pins", json={"product_id": theirs["id"]}, headers=headers
    )
    assert foreign.status_code == 404
    pinned = await client.post(
        f"/api/v1/streams/{sid}/pins?locale=ru&currency=RUB",
        json={"product_id": mine["id"]},
        headers=headers,
    )
    card = pinned.json()["pinned_product"]
    assert card["title"] == "Увлажняющий крем" and card["price"]["currency"] == "RUB"
    unpinned = await client.post(
        f"/api/v1/streams/{sid}/pins", json={"product_id": None}, headers=headers
    )
    assert unpinned.json()["pinned_product"] is None


async def test_bad_stream_input_is_a_422(client: httpx.AsyncClient) -> None:
    """Unknown languages, naive timestamps and short flash sales are validation errors."""
    _, headers = await account(client, role="merchant")
    for body in (
        {"title": TITLE, "languages": ["xx"]},
        {"title": TITLE, "scheduled_at": "2026-12-01T18:00:00"},
        {"title": {}},
    ):
        response = await client.post("/api/v1/streams", json=body, headers=headers)
        assert response.status_code == 422, body
    sid = (await client.post("/api/v1/streams", json={"title": TITLE}, headers=headers)).json()[
        "id"
    ]
    short = await client.post(
        f"/api/v1/streams/{sid}/flash-sales",
        json={
            "product_id": 1,
            "price": {"amount": "1", "currency": "KZT"},
            "quantity": 1,
            "duration_s": 1,
        },
        headers=headers,
    )
    assert short.status_code == 422
    assert (await client.get("/api/v1/streams/999999")).status_code == 404


async def test_a_stream_names_its_video_address(client: httpx.AsyncClient) -> None:
    """The playback URL given at creation is shown with the stream; a bad one is a 422."""
    _, merchant = await account(client, role="merchant")
    url = "https://video.example.kz/live/evening/index.m3u8"
    body = {"title": {"ru": "Эфир"}, "playback_url": url}
    created = await client.post("/api/v1/streams", json=body, headers=merchant)
    assert created.status_code == 201, created.text
    assert created.json()["playback_url"] == url
    shown = await client.get(f"/api/v1/streams/{created.json()['id']}")
    assert shown.json()["playback_url"] == url
    bad = await client.post(
        "/api/v1/streams", json={**body, "playback_url": "javascript:alert(1)"}, headers=merchant
    )
    assert bad.status_code == 422


async def test_mine_lists_only_the_callers_streams(client: httpx.AsyncClient) -> None:
    """A merchant's "mine" holds its own streams, not another merchant's; signed out it is
    a 401."""
    _, first = await account(client, role="merchant")
    _, second = await account(client, role="merchant")
    ours = await client.post("/api/v1/streams", json={"title": {"ru": "Наш"}}, headers=first)
    theirs = await client.post("/api/v1/streams", json={"title": {"ru": "Их"}}, headers=second)
    assert ours.status_code == theirs.status_code == 201
    mine = (await client.get("/api/v1/streams?mine=true", headers=first)).json()
    assert [s["id"] for s in mine["items"]] == [ours.json()["id"]] and mine["total"] == 1
    everyone = (await client.get("/api/v1/streams")).json()
    assert everyone["total"] == 2
    assert (await client.get("/api/v1/streams?mine=true")).status_code == 401
