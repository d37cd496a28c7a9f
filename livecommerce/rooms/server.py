"""The WebSocket protocol ``livecommerce serve`` runs uvicorn with.

It is uvicorn's own sans-I/O WebSocket protocol plus one ASGI scope extension,
``livecommerce.frames``: a :class:`~livecommerce.rooms.wire.FrameWriter` that writes
prebuilt frames straight to the connection's transport. Room fan-out is the one place where
the same bytes go to thousands of sockets; through the generic ``websocket.send`` path each of
them would be framed again and pass through several layers of calls, which costs several times
the write itself (docs/benchmarks.md has the figures).

A client frame the WebSocket layer refuses (over ``ws_max_size``: 1009; a text frame that is
not UTF-8: 1007) is answered with its close frame, and the socket is closed only once the
client has closed its side (or after ``LINGER_S``): closing with the client's unread bytes
still in the kernel would reset the connection and could destroy the close frame on its way,
leaving the client with a bare 1006. A bad frame is the client's error, not the server's, so
it is logged without a traceback.

At shutdown it closes each WebSocket with 1001 and a reconnect delay in the reason
(``retry_after_ms=N``, drawn per socket) instead of uvicorn's bare 1012. Everything else
(handshake, pings, closing, reading) is uvicorn's, and an app served by any
other ASGI server simply does not see the extension and uses ``websocket.send``.

Per-message deflate is off for room sockets (``ws_per_message_deflate=False`` in the serve
command): compressing is per connection, so it would undo the shared encoding, and it keeps a
zlib context per socket; room frames are a few hundred bytes and gain little from it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
from typing import Any

from livecommerce.rooms.hub import CLOSE_GOING_AWAY, reconnect_reason
from livecommerce.rooms.wire import FRAMES_EXTENSION

# The kernel's send buffer per WebSocket (Linux doubles it). Left alone it grows to several
# MiB for a client that stopped reading; this keeps a stalled phone's cost to a few hundred
# KiB (with the hub's own SEND_BUFFER_MAX) and lets the hub notice it in seconds. A room
# sends a few KiB per second, far below what this allows even over a slow mobile link.
SOCKET_SEND_BUFFER = 64 * 1024
# After refusing a client frame with a close, how long the client has to close its side
# before the server drops the connection anyway.
LINGER_S = 5.0
CLOSE_INVALID_DATA = 1007

log = logging.getLogger(__name__)

try:  # uvicorn >= 0.35
    from uvicorn.protocols.websockets.websockets_sansio_impl import (
        WebSocketsSansIOProtocol as _Base,
    )
except ImportError:  # pragma: no cover - an older uvicorn: rooms use websocket.send
    _Base = None  # type: ignore[assignment,misc]


class TransportFrameWriter:
    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def write(self, data: bytes) -> bool:
        protocol = self._protocol
        if protocol.close_sent or protocol.disconnected or not protocol.handshake_complete:
            return False
        transport = protocol.transport
        if transport.is_closing():
            return False
        transport.write(data)
        return True

    def buffered(self) -> int:
        return int(self._protocol.transport.get_write_buffer_size())


if _Base is not None:

    class RoomWebSocketProtocol(_Base):
        """uvicorn's WebSocket protocol, offering a direct frame writer to the app."""

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None and self.handshake_initiated and not self.close_sent:
                # The app's task is created but has not run yet: it sees the extension.
                scope["extensions"][FRAMES_EXTENSION] = TransportFrameWriter(self)
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError, AttributeError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER)

        def data_received(self, data: bytes) -> None:
            if getattr(self, "_refused", False):
                return  # what a refused client still sends is read and dropped
            super().data_received(data)

        def send_receive_event_to_app(self) -> None:
            if self.curr_msg_data_type != "text" or self.close_sent:
                super().send_receive_event_to_app()
                return
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            self.frames = []
            try:
                text = data.decode()
            except UnicodeDecodeError:
                # RFC 6455 section 8.1: the connection fails with 1007. uvicorn would log a
                # traceback here, for every such frame a client cares to send.
                log.info("WebSocket text frame that is not UTF-8: closing with 1007")
                self.conn.send_close(CLOSE_INVALID_DATA, "text frames must be UTF-8")
                self.handle_parser_exception()
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})

        def handle_parser_exception(self) -> None:
            """Close after a refused frame: the close frame goes out, the app hears of it,
            and the connection ends once the client closed its side (see the module
            docstring)."""
            if getattr(self, "_refused", False):
                return
            self._refused = True
            assert self.conn.close_sent is not None
            code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
            self.stop_keepalive()
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            if self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.close_timer = self.loop.call_later(LINGER_S, self.transport.close)

        def shutdown(self) -> None:
            """The server is stopping: close with 1001 and a randomised reconnect delay in
            the reason (uvicorn's own 1012 carries none), so that the viewers of a drained
            process come back spread out rather than all at once."""
            if not self.handshake_complete or self.close_sent:
                super().shutdown()
                return
            self.stop_keepalive()
            reason = reconnect_reason(
                "server restarting: reconnect with last_seq", len(self.connections)
            )
            self.queue.put_nowait({"type": "websocket.disconnect", "code": CLOSE_GOING_AWAY})
            self.conn.send_close(CLOSE_GOING_AWAY, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()

        async def send(self, message: Any) -> None:
            await super().send(message)
            if message["type"] == "websocket.accept" and self.handshake_complete:
                # The parsed handshake is not needed again; an idle viewer need not keep it.
                self.request = None  # type: ignore[assignment]
                self.response = None  # type: ignore[assignment]

    WS_PROTOCOL: Any = RoomWebSocketProtocol
else:  # pragma: no cover
    WS_PROTOCOL = "auto"


# Allocations (net of frees) between two young-generation passes of the collector; Python's
# default is 700. See ``tune_collector``.
GC_YOUNG_THRESHOLD = 20_000


def tune_collector() -> None:
    """Collector settings for a process that holds thousands of sockets.

    Each viewer's socket keeps a few hundred objects alive (protocol, scope, tasks, frames).
    Python considers a full collection every 700 x 10 x 10 allocations and runs one whenever
    the long-lived objects grew by a quarter, so while 5,000 viewers join a process walks its
    whole heap a dozen times or more: measured, a third of the CPU a join storm costs. A
    larger young generation makes those passes rare (the young passes stay cheap: they walk
    only what was allocated since), and freezing what was loaded at start-up (modules,
    routes, models, which live as long as the process) takes it out of every pass.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


# How ``livecommerce serve`` (and the fan-out benchmark) runs uvicorn's WebSockets.
WEBSOCKET_OPTIONS: dict[str, Any] = {
    "ws": WS_PROTOCOL,
    # A client frame is a chat line or a tap, never near 64 KiB (larger ones close with 1009).
    "ws_max_size": 64 * 1024,
    # Pings every 20 s close dead sockets within 40 s.
    "ws_ping_interval": 20.0,
    "ws_ping_timeout": 20.0,
    # Room frames are encoded once and written as they are to every socket of a group;
    # per-connection compression would undo that (see the module docstring).
    "ws_per_message_deflate": False,
    # Connections the kernel holds for the process before it accepts them. A room's rush (a
    # stream starting, viewers coming back after a restart) is thousands of connects at once;
    # with uvicorn's 2048 the rest are dropped and retried by the clients a second or more
    # later. The kernel caps it at net.core.somaxconn (4096 by default since Linux 5.4).
    "backlog": 16384,
}
