"""Hostile client frames over a real socket: each gets an error frame, the socket and the room
go on, and the server logs no traceback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.fixtures.frames import next_frame
from tests.fixtures.server import assert_no_traceback, migrated_server
from tests.rooms.test_rooms_ws import (
    guest_token,
    live_stream,
    viewer_token,
    ws_url,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with migrated_server(tmp_path_factory.mktemp("hostile-frames")) as served:
        yield served


@pytest.fixture
async def http(served: tuple[str, Path]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served[0], timeout=10) as client:
        yield client


# (raw frame as sent, the error code it gets). A lone surrogate is sent the only way JSON can
# carry one: as the escape \ud800 in the frame's text (the frame itself is valid UTF-8).
HOSTILE = [
    ('{"type":"react","data":{"kind":[1]}}', "invalid_frame"),
    ('{"type":"react","data":{"kind":{"a":1}}}', "invalid_frame"),
    ('{"type":"react","data":null}', "invalid_frame"),
    ('{"type":"chat","data":{"text":"\\ud800"}}', "invalid_json"),
    ('{"type":"chat","data":{"text":"ok \\udfff"}}', "invalid_json"),
    ('{"type":"estimate","data":{"ref":"\\ud800"}}', "invalid_json"),
    ('{"type":"\\ud800"}', "invalid_json"),
    ('{"type":"chat","data":"x"}', "invalid_frame"),
    ('{"type":"chat","data":{"text":["x"]}}', "invalid_frame"),
    ('{"type":"chat","data":{"text":7}}', "invalid_frame"),
    ('{"type":"chat"}', "invalid_frame"),
    ('{"type":"estimate","data":[1]}', "invalid_frame"),
    ('{"type":7}', "unknown_type"),
    ('{"type":null}', "unknown_type"),
    ("[]", "unknown_type"),
    ('"str"', "unknown_type"),
    ("null", "unknown_type"),
    ('{"type":"dance"}', "unknown_type"),
    ("{not json", "invalid_json"),
    ('{"type":"ping"} trailing', "invalid_json"),
    ("[" * 3000, "invalid_json"),  # nested deeper than any parser recurses
    ('{"type":"estimate","data":{"a":' + "[" * 2000 + "]" * 2000 + "}}", "invalid_json"),
    ("x" * 5000, "frame_too_large"),
]


@pytest.mark.parametrize("signed_in", [False, True], ids=["guest", "signed-in"])
async def test_hostile_frames_get_error_frames_and_the_room_goes_on(
    http: httpx.AsyncClient, served: tuple[str, Path], signed_in: bool
) -> None:
    """Each malformed frame gets its error frame; the sender's socket still answers and chats,
    another viewer still hears the room, and nothing is logged as a crash."""
    live = await live_stream(http)
    token = (await viewer_token(http))[1] if signed_in else await guest_token(http)
    _, talker_token = await viewer_token(http)
    async with (
        connect(ws_url(http, live.stream_id, token, locale="en")) as sender,
        connect(ws_url(http, live.stream_id, talker_token, locale="ru")) as other,
    ):
        await next_frame(sender, "welcome")
        await next_frame(other, "welcome")
        for bad, code in [*HOSTILE, (b"\x00\x01", "binary_not_supported")]:
            await sender.send(bad)
            error = await next_frame(sender, "error", "pong")
            assert error["type"] == "error", bad
            assert error["seq"] is None
            assert error["data"]["code"] == code, bad
            assert error["data"]["message"], bad
        await sender.send('{"type":"react","data":{"kind":[1]}}')
        assert (await next_frame(sender, "error"))["data"]["details"] == {"field": "data.kind"}
        await sender.send('{"type":"chat","data":"x"}')
        assert (await next_frame(sender, "error"))["data"]["details"] == {"field": "data"}
        await sender.send(json.dumps({"type": "ping"}))
        assert (await next_frame(sender, "pong"))["seq"] is None
        await sender.send(json.dumps({"type": "react", "data": {"kind": "heart"}}))
        reactions = await next_frame(other, "reactions")
        assert reactions["data"]["counts"] == {"heart": 1}
        await sender.send(json.dumps({"type": "chat", "data": {"text": "still here"}}))
        if signed_in:
            assert (await next_frame(other, "chat"))["data"]["text"] == "still here"
            assert (await next_frame(sender, "chat"))["data"]["text"] == "still here"
        else:
            assert (await next_frame(sender, "error"))["data"]["code"] == "guest_cannot_chat"
        # The other viewer still talks to the room.
        await other.send(json.dumps({"type": "chat", "data": {"text": "привет"}}))
        assert (await next_frame(sender, "chat"))["data"]["text"] == "привет"
    assert_no_traceback(served[1])


async def test_hostile_frames_on_the_personal_channel(
    http: httpx.AsyncClient, served: tuple[str, Path]
) -> None:
    """``/ws/me`` answers every bad frame with an error frame and keeps answering pings."""
    _, token = await viewer_token(http)
    base = str(http.base_url).replace("http://", "ws://").rstrip("/")
    async with connect(f"{base}/ws/me?token={token}&locale=en") as ws:
        await next_frame(ws, "welcome")
        for bad, code in [
            ('{"type":"ping","data":{"x":"\\ud800"}}', "invalid_json"),
            ('{"type":"\\udc00"}', "invalid_json"),
            ('{"type":"chat","data":{"text":"hi"}}', "unknown_type"),
            ('{"type":"chat","data":"x"}', "unknown_type"),
            ("[]", "unknown_type"),
            ('"str"', "unknown_type"),
            ("{not json", "invalid_json"),
            ("[" * 1000, "invalid_json"),
            ("x" * 2000, "frame_too_large"),
            (b"\x00", "binary_not_supported"),
        ]:
            await ws.send(bad)
            error = await next_frame(ws, "error", "pong")
            assert error["type"] == "error", bad
            assert error["data"]["code"] == code, bad
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_frame(ws, "pong"))["seq"] is None
    assert_no_traceback(served[1])
