"""Frames on the wire: one encoding shared by every connection of a group.

A server-to-client WebSocket frame is never masked, so the bytes of a text frame depend on
its payload alone: a frame built once can be written to every socket that should receive
it. When the server offers a direct writer (see :mod:`livecommerce.rooms.server`), the hub
writes these prebuilt bytes straight to each connection's transport, and several frames
that are ready together go out in one write. Otherwise frames go through the ordinary ASGI
``websocket.send`` one at a time.
"""

from __future__ import annotations

import struct
from typing import Protocol

OPCODE_TEXT = 0x81  # FIN + text


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((OPCODE_TEXT, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", OPCODE_TEXT, 126, size) + payload
    return struct.pack("!BBQ", OPCODE_TEXT, 127, size) + payload


class Batch:
    """Frames to deliver together, as texts and, built on first use, as wire bytes."""

    __slots__ = ("_wire", "texts")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = b"".join(text_frame(t.encode()) for t in self.texts)
        return self._wire

    def __len__(self) -> int:
        return len(self.texts)


class FrameWriter(Protocol):
    """Direct access to one accepted WebSocket's transport, offered by the server."""

    def write(self, data: bytes) -> bool:
        """Write prebuilt frames; False when the socket is closing or closed."""
        ...

    def buffered(self) -> int:
        """Bytes written but not yet taken by the kernel."""
        ...


FRAMES_EXTENSION = "livecommerce.frames"  # ASGI scope extension carrying a FrameWriter
