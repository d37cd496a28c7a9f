"""What a client may send on a room socket (and on ``/ws/me``): one parser for the boundary.

A frame is parsed and checked in one step by pydantic's JSON parser (``validate_json``), so
nothing past :func:`parse_client_frame` meets a value of the wrong type. That parser also
refuses a string holding a lone surrogate (``"\\ud800"``: valid JSON grammar, but not text),
which could not be encoded again when the message is published or echoed.

Each rule's error code is in docs/protocol.md: the frame is not JSON (or not text):
``invalid_json``; not an object with a string ``type``, or a type nobody answers:
``unknown_type``; a known type whose ``data`` has the wrong shape: ``invalid_frame``. Rules
about the values themselves (chat length, reaction kinds, an estimate's fields) stay with
whoever answers the message, each with its own code.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, TypeAdapter, ValidationError

from livecommerce.events import ClientEvent

# The messages the room handles itself; any other string type is a request for another
# part of the app (``app.state.room_requests``, e.g. ``estimate``), or unknown.
_OWN_TYPES = frozenset({ClientEvent.CHAT, ClientEvent.REACT, ClientEvent.PING})


class _Frame(BaseModel):
    # Strict: a number is not a text, a list is not a reaction kind. Unknown keys are ignored
    # (a client may send ``seq`` or ``ts`` back).
    model_config = ConfigDict(strict=True, frozen=True)


class ChatData(_Frame):
    text: str


class ReactData(_Frame):
    kind: str


class Chat(_Frame):
    type: Literal["chat"]
    data: ChatData


class React(_Frame):
    type: Literal["react"]
    data: ReactData


class Ping(_Frame):
    type: Literal["ping"]
    data: Any = None  # ignored


class Request(_Frame):
    """A message another part of the app answers, or an unknown type: which of the two is
    the app's to say, so ``data`` is checked once a handler is found (:func:`request_data`).
    """

    type: str
    data: Any = None


def request_data(frame: Request) -> dict[str, Any]:
    """A request's ``data``: an object (absent: empty); raises :class:`BadFrame`."""
    if frame.data is None:
        return {}
    if not isinstance(frame.data, dict):
        raise BadFrame("invalid_frame", field="data")
    return frame.data


def _tag(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if not isinstance(kind, str):
        return None
    return kind if kind in _OWN_TYPES else "request"


ClientFrame = Annotated[
    Annotated[Chat, Tag("chat")]
    | Annotated[React, Tag("react")]
    | Annotated[Ping, Tag("ping")]
    | Annotated[Request, Tag("request")],
    Discriminator(_tag),
]
_CLIENT_FRAME: TypeAdapter[Chat | React | Ping | Request] = TypeAdapter(ClientFrame)


class BadFrame(Exception):
    """A client frame that cannot be handled; ``code`` is its ``error`` frame's code."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params  # the message's parameters, also sent as ``details``


def parse_client_frame(text: str) -> Chat | React | Ping | Request:
    """The frame ``text`` checked for shape and types; raises :class:`BadFrame`.

    A request frame's type is not checked against the handlers here (they are the app's).
    """
    try:
        return _CLIENT_FRAME.validate_json(text)
    except ValidationError as error:
        first = error.errors(include_url=False, include_context=False, include_input=False)[0]
        if first["type"] == "json_invalid":
            raise BadFrame("invalid_json") from None
        if first["type"] in ("union_tag_not_found", "union_tag_invalid"):
            raise BadFrame("unknown_type") from None
        # loc starts with the union's tag: ("react", "data", "kind") is the field data.kind
        field = ".".join(str(part) for part in first["loc"][1:]) or "data"
        raise BadFrame("invalid_frame", field=field) from None
