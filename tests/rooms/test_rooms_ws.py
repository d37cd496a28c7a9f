"""Live rooms end to end: a real server process, real WebSocket clients over a real socket."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.fixtures.factories import account, create_product
from tests.fixtures.frames import next_frame
from tests.fixtures.server import migrated_server


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_server(tmp_path_factory.mktemp("rooms-server")) as (base, _):
        yield base


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


@dataclass
class Live:
    stream_id: int
    host: dict[str, str]  # auth headers of the merchant driving the stream
    product: dict[str, Any]


async def live_stream(http: httpx.AsyncClient, **stream: Any) -> Live:
    _, merchant = await account(http, role="merchant", currency="KZT")
    product = await create_product(http, merchant)
    body = {"title": {"ru": "Эфир", "kk": "Эфир", "uz": "Efir"}, **stream}
    created = await http.post("/api/v1/streams", json=body, headers=merchant)
    assert created.status_code == 201, created.text
    stream_id = created.json()["id"]
    started = await http.post(f"/api/v1/streams/{stream_id}/start", headers=merchant)
    assert started.status_code == 200, started.text
    return Live(stream_id, merchant, product)


def ws_url(http: httpx.AsyncClient, stream_id: int, token: str, **params: Any) -> str:
    base = str(http.base_url).replace("http://", "ws://").rstrip("/")
    query = "&".join(f"{k}={v}" for k, v in {"token": token, **params}.items())
    return f"{base}/ws/streams/{stream_id}?{query}"


async def viewer_token(http: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    user, headers = await account(http, role="viewer")
    return user, headers["Authorization"].removeprefix("Bearer ")


async def guest_token(http: httpx.AsyncClient) -> str:
    response = await http.post("/api/v1/auth/guest")
    assert response.status_code in (200, 201), response.text
    return str(response.json()["access_token"])


async def test_three_viewers_get_one_pin_in_their_language_and_currency(
    http: httpx.AsyncClient,
) -> None:
    """kk/KZT, ru/RUB and uz/UZS viewers see the same pin with their own title and price."""
    live = await live_stream(http)
    token = await guest_token(http)
    wanted = {"kk": "KZT", "ru": "RUB", "uz": "UZS"}
    sockets = {
        locale: await connect(ws_url(http, live.stream_id, token, locale=locale))
        for locale in wanted
    }
    try:
        for locale, ws in sockets.items():
            welcome = await next_frame(ws, "welcome")
            assert welcome["seq"] is None
            assert welcome["data"]["locale"] == locale
            assert welcome["data"]["currency"] == wanted[locale]
            assert welcome["data"]["stream"]["status"] == "live"
        pinned = await http.post(
            f"/api/v1/streams/{live.stream_id}/pins",
            json={"product_id": live.product["id"]},
            headers=live.host,
        )
        assert pinned.status_code == 200, pinned.text
        frames = {locale: await next_frame(ws, "product_pinned") for locale, ws in sockets.items()}
    finally:
        for ws in sockets.values():
            await ws.close()
    titles = {locale: f["data"]["product"]["title"] for locale, f in frames.items()}
    assert titles == {
        "kk": "Ылғалдандыратын крем",
        "ru": "Увлажняющий крем",
        "uz": "Namlovchi krem",
    }
    for locale, f in frames.items():
        price = f["data"]["product"]["price"]
        assert price["currency"] == wanted[locale]
        assert price["formatted"]
    assert frames["kk"]["data"]["product"]["price"]["formatted"].endswith("₸")
    assert frames["ru"]["data"]["product"]["price"]["formatted"].endswith("₽")
    assert "soʻm" in frames["uz"]["data"]["product"]["price"]["formatted"]
    assert len({f["seq"] for f in frames.values()}) == 1  # one room event, three renderings


async def test_resume_replays_missed_events_in_order(http: httpx.AsyncClient) -> None:
    """After a disconnect, last_seq brings back exactly the missed events, then live ones."""
    live = await live_stream(http)
    token = await guest_token(http)
    async with connect(ws_url(http, live.stream_id, token, locale="ru")) as ws:
        welcome = await next_frame(ws, "welcome")
    seen = welcome["data"]["last_seq"]
    for n in range(3):
        sent = await http.post(
            f"/api/v1/streams/{live.stream_id}/announcements",
            json={"text": {"ru": f"Скидка {n}", "kk": f"Жеңілдік {n}"}},
            headers=live.host,
        )
        assert sent.status_code == 202, sent.text
    epoch = welcome["data"]["epoch"]
    resume = ws_url(http, live.stream_id, token, locale="kk", last_seq=seen, epoch=epoch)
    async with connect(resume) as ws:
        welcome = await next_frame(ws, "welcome")
        assert welcome["data"]["resumed"] is True
        assert welcome["data"]["epoch"] == epoch
        assert welcome["data"]["last_seq"] == seen + 3
        replay = [await next_frame(ws, "announcement") for _ in range(3)]
        assert [f["seq"] for f in replay] == [seen + 1, seen + 2, seen + 3]
        assert [f["data"]["text"] for f in replay] == ["Жеңілдік 0", "Жеңілдік 1", "Жеңілдік 2"]
        await http.post(
            f"/api/v1/streams/{live.stream_id}/announcements",
            json={"text": {"ru": "Дальше"}},
            headers=live.host,
        )
        after = await next_frame(ws, "announcement")
        assert after["seq"] == seen + 4
        assert after["data"]["text"] == "Дальше"  # kk falls back to ru


async def test_resume_from_beyond_history_says_not_resumed(http: httpx.AsyncClient) -> None:
    """A last_seq the room never reached answers resumed=false instead of guessing."""
    live = await live_stream(http)
    token = await guest_token(http)
    async with connect(ws_url(http, live.stream_id, token)) as ws:
        epoch = (await next_frame(ws, "welcome"))["data"]["epoch"]
    async with connect(ws_url(http, live.stream_id, token, last_seq=10_000, epoch=epoch)) as ws:
        welcome = await next_frame(ws, "welcome")
    assert welcome["data"]["resumed"] is False


async def test_resume_needs_the_rooms_epoch(http: httpx.AsyncClient) -> None:
    """A seq names an event only within its epoch: a resume from another epoch, or without
    one, is resumed=false with the whole state, never a replay that could leave a gap."""
    live = await live_stream(http)
    token = await guest_token(http)
    async with connect(ws_url(http, live.stream_id, token)) as ws:
        welcome = await next_frame(ws, "welcome")
    seen, epoch = welcome["data"]["last_seq"], welcome["data"]["epoch"]
    assert isinstance(epoch, str) and epoch
    sent = await http.post(
        f"/api/v1/streams/{live.stream_id}/announcements",
        json={"text": {"ru": "Скидка"}},
        headers=live.host,
    )
    assert sent.status_code == 202, sent.text
    for params in ({"epoch": "0" + epoch}, {}, {"epoch": "x" * 100}):
        async with connect(ws_url(http, live.stream_id, token, last_seq=seen, **params)) as ws:
            again = await next_frame(ws, "welcome")
        assert again["data"]["resumed"] is False, params
        assert again["data"]["epoch"] == epoch
        assert again["data"]["last_seq"] == seen + 1


async def test_chat_reaches_other_viewers_and_guests_cannot_chat(http: httpx.AsyncClient) -> None:
    """A signed-in viewer's chat reaches everyone; a guest gets an error frame instead."""
    live = await live_stream(http)
    user, token = await viewer_token(http)
    guest = await guest_token(http)
    async with (
        connect(ws_url(http, live.stream_id, token, locale="ru")) as talker,
        connect(ws_url(http, live.stream_id, guest, locale="uz")) as listener,
    ):
        await next_frame(talker, "welcome")
        await next_frame(listener, "welcome")
        await talker.send(json.dumps({"type": "chat", "data": {"text": "Сколько стоит?"}}))
        got = await next_frame(listener, "chat")
        assert got["data"] == {
            "user": {"id": user["id"], "name": user["display_name"]},
            "text": "Сколько стоит?",
        }
        assert isinstance(got["seq"], int)
        await listener.send(json.dumps({"type": "chat", "data": {"text": "hi"}}))
        error = await next_frame(listener, "error")
        assert error["data"]["code"] == "guest_cannot_chat"
        assert error["data"]["message"] == "Chat qilish uchun tizimga kiring."


async def test_chat_limits_and_blocked_words(http: httpx.AsyncClient) -> None:
    """Too long, blocked and too fast messages are refused with their own error codes."""
    live = await live_stream(http)
    words = await http.put(
        f"/api/v1/streams/{live.stream_id}/blocked-words",
        json={"words": ["Spam"]},
        headers=live.host,
    )
    assert words.status_code == 200 and words.json() == {"words": ["spam"]}
    _, token = await viewer_token(http)
    async with connect(ws_url(http, live.stream_id, token, locale="en")) as ws:
        await next_frame(ws, "welcome")
        await asyncio.sleep(0.3)  # the reload signal reaches the hub
        await ws.send(json.dumps({"type": "chat", "data": {"text": "x" * 501}}))
        assert (await next_frame(ws, "error"))["data"]["code"] == "chat_too_long"
        await ws.send(json.dumps({"type": "chat", "data": {"text": "buy SPAM now"}}))
        assert (await next_frame(ws, "error"))["data"]["code"] == "chat_blocked"
        codes = []
        for n in range(8):
            await ws.send(json.dumps({"type": "chat", "data": {"text": f"msg {n}"}}))
        for _ in range(8):
            frame = await next_frame(ws, "chat", "error")
            codes.append(frame["data"]["code"] if frame["type"] == "error" else "ok")
        # Errors come straight back while accepted messages travel through the room, so
        # only the tally is fixed: the burst of five passes, the rest is refused.
        assert codes.count("ok") == 5
        assert codes.count("chat_rate_limited") == 3


async def test_a_new_blocked_word_applies_to_the_very_next_message(
    http: httpx.AsyncClient,
) -> None:
    """The list changes while a viewer is in the room: the first message after the answer
    is checked against it, in any spelling that reads as the word."""
    live = await live_stream(http)
    _, token = await viewer_token(http)
    async with connect(ws_url(http, live.stream_id, token, locale="en")) as ws:
        await next_frame(ws, "welcome")
        await ws.send(json.dumps({"type": "chat", "data": {"text": "скидка?"}}))
        assert (await next_frame(ws, "chat", "error"))["type"] == "chat"
        words = await http.put(
            f"/api/v1/streams/{live.stream_id}/blocked-words",
            json={"words": ["скидка"]},
            headers=live.host,
        )
        assert words.status_code == 200
        # No pause: the answer means the rule is in force.
        for text in ["скидка?", "с к и д к а", "cкидкa"]:  # the last with Latin c and a
            await ws.send(json.dumps({"type": "chat", "data": {"text": text}}))
            frame = await next_frame(ws, "chat", "error")
            assert frame["type"] == "error" and frame["data"]["code"] == "chat_blocked", text
        await ws.send(json.dumps({"type": "chat", "data": {"text": "когда доставка?"}}))
        assert (await next_frame(ws, "chat", "error"))["type"] == "chat"


async def test_malformed_frames_get_errors_and_the_socket_stays_usable(
    http: httpx.AsyncClient,
) -> None:
    """Bad JSON, unknown types, oversized and binary frames each get an error frame."""
    live = await live_stream(http)
    token = await guest_token(http)
    async with connect(ws_url(http, live.stream_id, token, locale="en")) as ws:
        await next_frame(ws, "welcome")
        for bad, code in [
            ("{not json", "invalid_json"),
            (json.dumps({"type": "dance"}), "unknown_type"),
            (json.dumps([1, 2]), "unknown_type"),
            ("x" * 5000, "frame_too_large"),
            (b"\x00\x01", "binary_not_supported"),
            (json.dumps({"type": "react", "data": {"kind": "bomb"}}), "invalid_reaction"),
        ]:
            await ws.send(bad)
            error = await next_frame(ws, "error")
            assert error["data"]["code"] == code
            assert error["seq"] is None
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_frame(ws, "pong"))["seq"] is None
    async with connect(ws_url(http, live.stream_id, token)) as ws:
        await next_frame(ws, "welcome")
        await ws.send("x" * 70_000)  # beyond the server's frame limit: a clean close
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_bad_token_and_unknown_stream_are_refused(http: httpx.AsyncClient) -> None:
    """An invalid token closes with 4401, an unknown stream with 4404, after an error frame."""
    live = await live_stream(http)
    for url, code, error in [
        (ws_url(http, live.stream_id, "not-a-jwt"), 4401, "invalid_token"),
        (ws_url(http, 999_999, await guest_token(http)), 4404, "stream_not_found"),
    ]:
        async with connect(url) as ws:
            frame = await next_frame(ws, "error")
            assert frame["data"]["code"] == error
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_signed_out_token_cannot_join(http: httpx.AsyncClient) -> None:
    """After sign-out, the earlier token is refused at connect with 4401 invalid_token."""
    live = await live_stream(http)
    _, token = await viewer_token(http)
    async with connect(ws_url(http, live.stream_id, token)) as ws:
        await next_frame(ws, "welcome")
    out = await http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204
    async with connect(ws_url(http, live.stream_id, token)) as ws:
        assert (await next_frame(ws, "error"))["data"]["code"] == "invalid_token"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_moderation_mute_and_ban(http: httpx.AsyncClient) -> None:
    """A muted viewer cannot chat; a banned one is disconnected and cannot come back."""
    live = await live_stream(http)
    user, token = await viewer_token(http)
    url = ws_url(http, live.stream_id, token, locale="ru")
    async with connect(url) as ws:
        await next_frame(ws, "welcome")
        muted = await http.post(
            f"/api/v1/streams/{live.stream_id}/moderation",
            json={"user_id": user["id"], "action": "mute", "duration_s": 600},
            headers=live.host,
        )
        assert muted.status_code == 204, muted.text
        assert (await next_frame(ws, "moderation"))["data"]["action"] == "mute"
        await ws.send(json.dumps({"type": "chat", "data": {"text": "hello"}}))
        assert (await next_frame(ws, "error"))["data"]["code"] == "muted"
        banned = await http.post(
            f"/api/v1/streams/{live.stream_id}/moderation",
            json={"user_id": user["id"], "action": "ban"},
            headers=live.host,
        )
        assert banned.status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(ws, "never")
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with connect(url) as ws:
        assert (await next_frame(ws, "error"))["data"]["code"] == "banned"
    cant = await http.post(
        f"/api/v1/streams/{live.stream_id}/moderation",
        json={"user_id": user["id"], "action": "ban"},
        headers={"Authorization": "Bearer " + token},
    )
    assert cant.status_code == 403


async def test_reactions_are_aggregated(http: httpx.AsyncClient) -> None:
    """Twenty taps arrive as a few aggregated reactions frames, not twenty."""
    live = await live_stream(http)
    token = await guest_token(http)
    async with connect(ws_url(http, live.stream_id, token)) as ws:
        await next_frame(ws, "welcome")
        for _ in range(15):
            await ws.send(json.dumps({"type": "react", "data": {"kind": "heart"}}))
        for _ in range(5):
            await ws.send(json.dumps({"type": "react", "data": {"kind": "fire"}}))
        totals: dict[str, int] = {}
        frames = 0
        while sum(totals.values()) < 20:
            frame = await next_frame(ws, "reactions")
            frames += 1
            assert frame["seq"] is None
            for kind, n in frame["data"]["counts"].items():
                totals[kind] = totals.get(kind, 0) + n
    assert totals == {"heart": 15, "fire": 5}
    assert frames <= 3


async def test_flash_sale_and_stream_end_reach_the_room(http: httpx.AsyncClient) -> None:
    """A flash sale's start reaches viewers priced in their currency; the end closes it."""
    live = await live_stream(http)
    token = await guest_token(http)
    async with connect(ws_url(http, live.stream_id, token, locale="kk")) as ws:
        await next_frame(ws, "welcome")
        sale = await http.post(
            f"/api/v1/streams/{live.stream_id}/flash-sales",
            json={
                "product_id": live.product["id"],
                "price": {"amount": "99.00", "currency": "CNY"},
                "quantity": 30,
                "duration_s": 300,
            },
            headers=live.host,
        )
        assert sale.status_code == 201, sale.text
        frame = await next_frame(ws, "flash_sale")
        assert frame["data"]["status"] == "active"
        assert frame["data"]["remaining"] == 30
        assert frame["data"]["price"]["currency"] == "KZT"
        again = await http.post(
            f"/api/v1/streams/{live.stream_id}/flash-sales",
            json={
                "product_id": live.product["id"],
                "price": {"amount": "90.00", "currency": "CNY"},
                "quantity": 5,
                "duration_s": 60,
            },
            headers=live.host,
        )
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "flash_sale_active"
        ended = await http.post(f"/api/v1/streams/{live.stream_id}/end", headers=live.host)
        assert ended.status_code == 200
        status = await next_frame(ws, "stream_status")
        assert status["data"]["status"] == "ended"
    detail = (await http.get(f"/api/v1/streams/{live.stream_id}")).json()
    assert detail["status"] == "ended" and detail["flash_sale"] is None


class StalledViewer:
    """A viewer on a plain socket that completes the handshake and then stops reading,
    with a small receive buffer, like a phone whose app froze on a bad network."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.buffer = b""

    def connect(self) -> None:
        parts = urlsplit(self.url)
        self.sock.settimeout(10)
        self.sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def read_all(self) -> list[tuple[int, bytes]]:
        """Every frame up to and including the close frame, as (opcode, payload)."""
        frames: list[tuple[int, bytes]] = []
        while True:
            while True:
                parsed = self._parse()
                if parsed is None:
                    break
                frames.append(parsed)
                if parsed[0] == 0x8:
                    return frames
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return frames
            if not chunk:
                return frames
            self.buffer += chunk

    def _parse(self) -> tuple[int, bytes] | None:
        data = self.buffer
        if len(data) < 2:
            return None
        size, at = data[1] & 0x7F, 2
        if size == 126:
            if len(data) < 4:
                return None
            size, at = int.from_bytes(data[2:4], "big"), 4
        elif size == 127:
            if len(data) < 10:
                return None
            size, at = int.from_bytes(data[2:10], "big"), 10
        if len(data) < at + size:
            return None
        self.buffer = data[at + size :]
        return data[0] & 0x0F, data[at : at + size]


@pytest.mark.slow
async def test_a_viewer_that_stops_reading_is_closed_with_4008_and_the_room_goes_on(
    http: httpx.AsyncClient,
) -> None:
    """A stalled socket is dropped with close code 4008 once its buffer limit is passed; a
    healthy viewer of the same room receives every announcement."""
    live = await live_stream(http)
    token = await guest_token(http)
    stalled = StalledViewer(ws_url(http, live.stream_id, token, locale="ru"))
    await asyncio.to_thread(stalled.connect)
    text = "Скидка на всё! " * 33  # 495 characters, about 1 KB a frame
    sent = 0
    async with connect(ws_url(http, live.stream_id, token, locale="kk"), max_queue=None) as ws:
        await next_frame(ws, "welcome")
        for _ in range(800):
            posted = await http.post(
                f"/api/v1/streams/{live.stream_id}/announcements",
                json={"text": {"ru": text, "kk": text, "uz": text}},
                headers=live.host,
            )
            assert posted.status_code == 202, posted.text
            sent += 1
        received = 0
        while received < sent:
            await next_frame(ws, "announcement", wait_s=30)
            received += 1
    frames = await asyncio.to_thread(stalled.read_all)
    stalled.sock.close()
    opcode, payload = frames[-1]
    assert opcode == 0x8, "the stalled viewer's socket ends with a close frame"
    assert int.from_bytes(payload[:2], "big") == 4008
    announcements = [f for f in frames if f[0] == 0x1 and b'"announcement"' in f[1]]
    assert 0 < len(announcements) < sent


async def test_a_draining_server_tells_each_viewer_when_to_reconnect(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Stopping livecommerce serve closes room sockets with 1001 and a retry_after_ms each."""
    sockets: list[ClientConnection] = []
    with migrated_server(tmp_path_factory.mktemp("draining-server")) as (base, _):
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            live = await live_stream(http)
            token = await guest_token(http)
            for locale in ("kk", "ru", "uz"):
                ws = await connect(ws_url(http, live.stream_id, token, locale=locale))
                await next_frame(ws, "welcome")
                sockets.append(ws)
    # Leaving the block stopped the server (SIGTERM) and waited for it to exit.
    delays = []
    for ws in sockets:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        assert ws.close_code == 1001
        found = re.search(r"retry_after_ms=(\d+)", ws.close_reason or "")
        assert found is not None, ws.close_reason
        delays.append(int(found.group(1)))
    assert all(0 <= delay <= 1000 for delay in delays)  # three sockets: the 1 s window
