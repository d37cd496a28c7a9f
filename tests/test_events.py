"""livecommerce/events.py and docs/protocol.md list the same WebSocket event types."""

from __future__ import annotations

import re
from pathlib import Path

from livecommerce.events import PAYLOADS, ClientEvent, NoticeEvent, ServerEvent

PROTOCOL = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| (server → client|client → server) \|", re.MULTILINE)


def documented() -> set[tuple[str, str]]:
    text = PROTOCOL.read_text(encoding="utf-8")
    section = text.split("## Event types", 1)[1].split("\n## ", 1)[0]
    return {(name, direction) for name, direction in ROW.findall(section)}


def test_every_event_type_is_documented_and_every_documented_one_exists() -> None:
    """The protocol's table of event types is exactly the module's, direction included."""
    module = {(str(e), "server → client") for e in (*ServerEvent, *NoticeEvent)} | {
        (str(e), "client → server") for e in ClientEvent
    }
    assert documented() == module


def test_every_payload_model_belongs_to_an_event_type() -> None:
    """A payload schema is keyed by a server event the module names."""
    names = {str(e) for e in (*ServerEvent, *NoticeEvent)}
    assert set(PAYLOADS) <= names
