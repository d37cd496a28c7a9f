"""The serve command's WebSocket protocol: uvicorn's, plus a direct frame writer for rooms."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from livecommerce.rooms.server import SOCKET_SEND_BUFFER, WS_PROTOCOL
from livecommerce.rooms.wire import FRAMES_EXTENSION, text_frame
from tests.fixtures.server import free_port

seen: dict[str, Any] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts, writes one prebuilt frame directly, one through ASGI, then closes."""
    assert scope["type"] == "websocket"
    writer = scope["extensions"].get(FRAMES_EXTENSION)
    seen["writer"] = writer
    assert (await receive())["type"] == "websocket.connect"
    seen["before_accept"] = writer.write(b"x") if writer is not None else None
    await send({"type": "websocket.accept"})
    if writer is None:
        await send({"type": "websocket.close", "code": 1011})
        return
    sock = seen["transport_socket"]
    seen["sndbuf"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) if sock else None
    assert writer.write(text_frame('{"direct":"ünïcode"}'.encode()) + text_frame(b"x" * 300))
    await send({"type": "websocket.send", "text": "via asgi"})
    message = await receive()
    seen["echo"] = message.get("text")
    await send({"type": "websocket.close", "code": 4008, "reason": "slow"})
    seen["after_close"] = writer.write(text_frame(b"late"))


class Protocol(WS_PROTOCOL):  # type: ignore[misc,valid-type]
    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        seen["transport_socket"] = self.transport.get_extra_info("socket")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws=Protocol, log_level="warning", lifespan="off"
    )
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve())
    async with asyncio.timeout(10):
        while not instance.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        instance.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_direct_frames_and_asgi_frames_share_one_socket_in_order(server: str) -> None:
    seen.clear()
    async with connect(server) as ws:
        assert await ws.recv() == '{"direct":"ünïcode"}'
        assert await ws.recv() == "x" * 300
        assert await ws.recv() == "via asgi"
        await ws.send("hello")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
    assert seen["echo"] == "hello"
    assert seen["before_accept"] is False, "nothing may be written before the handshake"
    assert seen["after_close"] is False, "nothing may be written after the close frame"
    # Linux reports twice the size asked for; other systems may round differently.
    assert seen["sndbuf"] is not None and SOCKET_SEND_BUFFER <= seen["sndbuf"] <= 4 * (
        SOCKET_SEND_BUFFER
    )
