"""Random and hostile frames against a real server's sockets, with hypothesis.

On ``/ws/streams/{id}`` and ``/ws/me``, generated frames (JSON of every shape, wrong types,
lone surrogate escapes, text that is not JSON, binary frames, frames over the size limits,
text frames that are not UTF-8) and floods from many sockets of one user. Every frame is
answered as docs/protocol.md says: at most an ``error`` frame with a documented code (or
the message's own effect), or a documented close code for a frame the WebSocket layer
refuses; never 1006 or 1011, and never a traceback in the server's log. Meanwhile another
viewer of the room hears every room event in order, ``seq`` rising by one.

The example budget is fixed and the generation derandomized (the ``ws-fuzz`` profile), so
a run takes the same frames each time and well under a minute.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from livecommerce.rooms.schemas import BadFrame, Ping, parse_client_frame
from livecommerce.streams.room import ERRORS
from tests.fixtures.frames import next_frame
from tests.fixtures.server import assert_no_traceback, migrated_server
from tests.rooms.test_rooms_ws import (
    Live,
    guest_token,
    live_stream,
    viewer_token,
    ws_url,
)

settings.register_profile(
    "ws-fuzz",
    max_examples=250,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("ws-fuzz")

WS_MAX_BYTES = 64 * 1024  # the server's ws_max_size: larger frames close with 1009
ROOM_FRAME_MAX = 4096  # characters: larger ones get frame_too_large
ME_FRAME_MAX = 1024
CLOSE_TOO_BIG = 1009
CLOSE_NOT_UTF8 = 1007  # RFC 6455: a text frame that is not UTF-8 fails the connection

SERVER_TYPES = {
    "welcome",
    "chat",
    "chat_deleted",
    "moderation",
    "product_pinned",
    "flash_sale",
    "announcement",
    "order_placed",
    "stream_status",
    "reactions",
    "viewer_count",
    "error",
    "pong",
    "estimate",
}
# The room's own codes and those of the estimate endpoint (docs/protocol.md).
ROOM_CODES = set(ERRORS) | {
    "validation_error",
    "product_not_found",
    "out_of_stock",
    "destination_not_served",
    "service_unavailable",
}
ME_CODES = {"invalid_json", "unknown_type", "binary_not_supported", "frame_too_large"}

T = TypeVar("T")


# --- frames -------------------------------------------------------------------------------


class Frame:
    """One frame as sent: ``text`` or ``binary`` data, or ``raw`` bytes in a text frame.

    A plain class: hypothesis prints a dataclass field by field, a 200 kB frame in full.
    """

    __slots__ = ("data", "kind")

    def __init__(self, kind: str, data: str | bytes) -> None:
        self.kind = kind  # "text" | "binary" | "raw"
        self.data = data

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 80 else self.data[:80]
        return f"Frame({self.kind}, {shown!r}, len={len(self.data)})"


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Strings with lone surrogates: JSON can carry them only as escapes (json.dumps writes those).
surrogate_text = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3).map(
    lambda s: "a" + s
)
texts = st.text(max_size=40) | surrogate_text | st.text(max_size=600)
type_names = (
    st.sampled_from(["chat", "react", "ping", "estimate", "dance", "", "CHAT", "welcome"])
    | st.text(max_size=10)
    | json_scalars
)
datas = (
    json_values
    | st.fixed_dictionaries({"text": texts | json_values})
    | st.fixed_dictionaries(
        {"kind": st.sampled_from(["heart", "fire", "bomb", ""]) | texts | json_values}
    )
    | st.fixed_dictionaries(
        {},
        optional={
            "product_id": st.integers(min_value=-5, max_value=2**40) | json_values,
            "country": st.sampled_from(["KZ", "UZ", "RU", "DE", "zz", "ǅǅ"]) | texts,
            "city": st.sampled_from(["Almaty", "Toshkent", "Москва", " "]) | texts,
            "ref": texts | json_values,
        },
    )
)
objects = st.fixed_dictionaries(
    {"type": type_names}, optional={"data": datas, "seq": json_values, "ts": json_values}
)


def _dump(value: Any, ascii_only: bool) -> str:
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate, raw: only its escape can be sent
        return json.dumps(value)
    return text


json_frames = st.builds(_dump, objects | json_values, st.booleans())


@st.composite
def broken_json(draw: st.DrawFn) -> str:
    """A valid frame cut, or with a character put in at some place."""
    text = draw(json_frames)
    at = draw(st.integers(min_value=0, max_value=len(text)))
    if draw(st.booleans()):
        return text[:at]
    return text[:at] + draw(st.sampled_from(list('{}[]",:\\\x00\x7f'))) + text[at:]


@st.composite
def not_utf8(draw: st.DrawFn) -> bytes:
    head = draw(json_frames).encode()[:20]
    bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
    return head + bad


def large(limit: int) -> st.SearchStrategy[str]:
    """Frames just over the socket's own limit, and over the WebSocket layer's."""
    sizes = st.sampled_from([limit + 1, limit * 2, WS_MAX_BYTES - 10, WS_MAX_BYTES + 1, 200_000])
    body = st.sampled_from(["x", "ж", '{"type":"chat","data":{"text":"'])
    return st.builds(lambda n, b: (b * n)[:n] if len(b) == 1 else b + "y" * n, sizes, body)


def frames(limit: int) -> st.SearchStrategy[Frame]:
    return st.one_of(
        json_frames.map(lambda t: Frame("text", t)),
        broken_json().map(lambda t: Frame("text", t)),
        st.text(max_size=60).map(lambda t: Frame("text", t)),
        st.binary(max_size=64).map(lambda b: Frame("binary", b)),
        not_utf8().map(lambda b: Frame("raw", b)),
        large(limit).map(lambda t: Frame("text", t)),
    )


def expected_close(frame: Frame) -> int | None:
    """The close code the WebSocket layer answers ``frame`` with, or None (it reaches the app)."""
    if frame.kind == "raw":
        return CLOSE_NOT_UTF8
    size = len(frame.data.encode()) if isinstance(frame.data, str) else len(frame.data)
    return CLOSE_TOO_BIG if size > WS_MAX_BYTES else None


# Tried on every run: a frame far over the WebSocket limit (the connection used to be reset
# under its close frame: 1006), text frames that are not UTF-8 (uvicorn logged a traceback for
# each), and a chat on either side of them.
ALWAYS = [
    Frame("text", '{"type":"chat","data":{"text":"before"}}'),
    Frame("text", "ж" * 200_000),
    Frame("raw", b'{"type":"chat","data":{"text":"\xff"}}'),
    Frame("raw", b'{"type":"ping","data":"\xed\xa0\x80"}'),
    Frame("text", '{"type":"chat","data":{"text":"after"}}'),
]


# --- driving the sockets ------------------------------------------------------------------


def json_frame(raw: str | bytes) -> dict[str, Any]:
    """A server frame: one JSON object in the room envelope."""
    assert isinstance(raw, str), f"binary frame from the server: {raw!r}"
    parsed = json.loads(raw)
    assert isinstance(parsed, dict) and parsed.get("type") in SERVER_TYPES, raw[:200]
    assert parsed["seq"] is None or isinstance(parsed["seq"], int), raw[:200]
    return parsed


async def send(ws: ClientConnection, frame: Frame) -> None:
    if frame.kind == "raw":
        assert isinstance(frame.data, bytes)
        await ws.send(frame.data, text=True)
    else:
        await ws.send(frame.data)


def is_ping(frame: Frame, limit: int) -> bool:
    """Whether the server takes ``frame`` for a ping (and answers it with a pong of its own)."""
    if frame.kind != "text" or len(frame.data) > limit:
        return False
    try:
        return isinstance(parse_client_frame(str(frame.data)), Ping)
    except BadFrame:
        return False


async def answer_to(
    ws: ClientConnection, frame: Frame, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Send ``frame`` then a ping: the frames received up to the pong (the second one when
    ``frame`` was a ping itself), and the close code when the socket closed instead."""
    received: list[dict[str, Any]] = []
    pongs = 1 + is_ping(frame, limit)
    try:
        await send(ws, frame)
        await ws.send('{"type":"ping"}')
        async with asyncio.timeout(10):
            while True:
                got = json_frame(await ws.recv())
                if got["type"] != "pong":
                    received.append(got)
                    continue
                pongs -= 1
                if not pongs:
                    return received, None
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, f"closed without a close frame (1006) after {frame!r}"
        return received, closed.rcvd.code


def check_answer(
    frame: Frame,
    received: list[dict[str, Any]],
    closed: int | None,
    *,
    limit: int,
    codes: set[str],
) -> None:
    assert closed == expected_close(frame), (frame, closed, received)
    errors = [f for f in received if f["type"] == "error"]
    assert len(errors) <= 1, (frame, errors)
    for error in errors:
        assert error["seq"] is None
        assert error["data"]["code"] in codes, (frame, error)
        assert isinstance(error["data"]["message"], str) and error["data"]["message"]
    if closed is not None:
        return
    code = errors[0]["data"]["code"] if errors else None
    if frame.kind == "binary":
        assert code == "binary_not_supported", (frame, received)
    elif len(frame.data) > limit:
        assert code == "frame_too_large", (frame, received)


@dataclass
class Observer:
    """A viewer who only listens, keeping every room event it hears."""

    ws: ClientConnection
    first_seq: int
    events: list[tuple[int, str]] = field(default_factory=list)
    closed: BaseException | None = None

    async def listen(self) -> None:
        try:
            async for raw in self.ws:
                got = json_frame(raw)
                if got["seq"] is not None:
                    self.events.append((got["seq"], got["type"]))
        except BaseException as exc:  # a close or a bad frame: reported by check()
            self.closed = exc
            raise
        self.closed = ConnectionError(f"closed with {self.ws.close_code}")

    async def check(self, http: httpx.AsyncClient, live: Live) -> None:
        """Every room event up to a final announcement, each once, in order."""
        marker = await http.post(
            f"/api/v1/streams/{live.stream_id}/announcements",
            json={"text": {"ru": "конец"}},
            headers=live.host,
        )
        assert marker.status_code == 202, marker.text
        async with asyncio.timeout(10):
            while not self.events or self.events[-1][1] != "announcement":
                assert self.closed is None, repr(self.closed)
                await asyncio.sleep(0.02)
        seqs = [seq for seq, _ in self.events]
        assert seqs == list(range(self.first_seq + 1, self.first_seq + 1 + len(seqs)))


@dataclass
class Sockets:
    """Sockets kept open across examples, opened again when an example closed one."""

    urls: dict[str, str]
    open: dict[str, ClientConnection] = field(default_factory=dict)
    room_events: dict[int, str] = field(default_factory=dict)  # seq -> type, as they heard

    async def get(self, who: str) -> ClientConnection:
        ws = self.open.get(who)
        if ws is None or ws.close_code is not None:
            ws = await connect(self.urls[who], max_size=None)
            welcome = json_frame(await ws.recv())
            assert welcome["type"] == "welcome", welcome
            self.open[who] = ws
        return ws

    def heard(self, received: list[dict[str, Any]]) -> None:
        for got in received:
            if got["seq"] is not None:
                self.room_events[got["seq"]] = got["type"]

    async def close(self) -> None:
        for ws in self.open.values():
            await ws.close()


def run_examples(test: Callable[[], None]) -> Awaitable[None]:
    """Hypothesis drives ``test`` in a thread; the sockets stay on this loop."""
    return asyncio.to_thread(test)


def on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    def run(job: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(job, loop)
        return future.result(timeout=60)

    return run


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with migrated_server(tmp_path_factory.mktemp("ws-fuzz")) as served:
        yield served


@pytest.fixture
async def http(served: tuple[str, Path]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served[0], timeout=10) as client:
        yield client


async def observe(http: httpx.AsyncClient, live: Live) -> tuple[Observer, asyncio.Task[None]]:
    ws = await connect(ws_url(http, live.stream_id, await guest_token(http), locale="ru"))
    welcome = await next_frame(ws, "welcome")
    observer = Observer(ws, welcome["data"]["last_seq"])
    return observer, asyncio.create_task(observer.listen())


# --- tests --------------------------------------------------------------------------------


async def test_fuzzed_frames_on_a_room_socket(
    http: httpx.AsyncClient, served: tuple[str, Path]
) -> None:
    """A guest's and a signed-in viewer's sockets answer every generated frame as documented,
    and a listening viewer hears every room event (the chats that passed) in order."""
    live = await live_stream(http)
    _, token = await viewer_token(http)
    sockets = Sockets(
        {
            "guest": ws_url(http, live.stream_id, await guest_token(http), locale="en"),
            "user": ws_url(http, live.stream_id, token, locale="kk"),
        }
    )
    observer, listening = await observe(http, live)
    run = on_loop(asyncio.get_running_loop())

    @FUZZ
    @given(
        who=st.sampled_from(["guest", "user"]), sent=st.lists(frames(ROOM_FRAME_MAX), max_size=4)
    )
    @example(who="user", sent=ALWAYS)
    def one_example(who: str, sent: list[Frame]) -> None:
        for frame in sent:
            ws = run(sockets.get(who))
            received, closed = run(answer_to(ws, frame, ROOM_FRAME_MAX))
            sockets.heard(received)
            check_answer(frame, received, closed, limit=ROOM_FRAME_MAX, codes=ROOM_CODES)

    try:
        await run_examples(one_example)
        await observer.check(http, live)
    finally:
        listening.cancel()
        await sockets.close()
        await observer.ws.close()
    heard = dict(observer.events)
    assert "chat" in heard.values()  # at least ALWAYS's chats went through the room
    assert all(heard.get(seq) == kind for seq, kind in sockets.room_events.items())
    assert_no_traceback(served[1])


async def test_fuzzed_frames_on_the_personal_channel(
    http: httpx.AsyncClient, served: tuple[str, Path]
) -> None:
    """``/ws/me`` answers every generated frame with a pong, one documented error frame or a
    documented close."""
    _, token = await viewer_token(http)
    base = str(http.base_url).replace("http://", "ws://").rstrip("/")
    sockets = Sockets({"me": f"{base}/ws/me?token={token}&locale=uz"})
    run = on_loop(asyncio.get_running_loop())

    @FUZZ
    @given(sent=st.lists(frames(ME_FRAME_MAX), max_size=4))
    @example(sent=ALWAYS)
    def one_example(sent: list[Frame]) -> None:
        for frame in sent:
            ws = run(sockets.get("me"))
            received, closed = run(answer_to(ws, frame, ME_FRAME_MAX))
            check_answer(frame, received, closed, limit=ME_FRAME_MAX, codes=ME_CODES)

    try:
        await run_examples(one_example)
    finally:
        await sockets.close()
    assert_no_traceback(served[1])


FLOOD = [
    '{"type":"chat","data":{"text":"flood"}}',
    '{"type":"react","data":{"kind":"heart"}}',
    '{"type":"react","data":{"kind":[1]}}',
    '{"type":"estimate","data":{"product_id":1,"country":"KZ","city":"Almaty"}}',
    '{"type":"chat","data":{"text":"\\ud800"}}',
    "{not json",
    "x" * 5000,
    b"\x00\x01",
]


async def flood(ws: ClientConnection, rounds: int) -> list[dict[str, Any]]:
    """Send the flood ``rounds`` times without reading, then a ping; everything received up
    to its pong."""
    for _ in range(rounds):
        for frame in FLOOD:
            await ws.send(frame)
    await ws.send('{"type":"ping"}')
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while (got := json_frame(await ws.recv()))["type"] != "pong":
            received.append(got)
    return received


async def test_a_flood_from_many_sockets_of_one_user(
    http: httpx.AsyncClient, served: tuple[str, Path]
) -> None:
    """One user fills the socket cap (the next socket is refused with 4429) and floods the
    room from all of them at once: every socket answers and stays open, and a listening
    viewer hears every room event in order."""
    live = await live_stream(http)
    _, token = await viewer_token(http)
    observer, listening = await observe(http, live)
    url = ws_url(http, live.stream_id, token)
    flooders = [await connect(url, max_size=None) for _ in range(5)]
    try:
        for ws in flooders:
            await next_frame(ws, "welcome")
        async with connect(url) as sixth:
            assert (await next_frame(sixth, "error"))["data"]["code"] == "too_many_sockets"
            with pytest.raises(ConnectionClosed) as closed:
                await sixth.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        answers = await asyncio.gather(*(flood(ws, rounds=25) for ws in flooders))
        for received in answers:
            codes = {f["data"]["code"] for f in received if f["type"] == "error"}
            assert codes <= ROOM_CODES, codes
            assert "chat_rate_limited" in codes and "frame_too_large" in codes
        assert all(ws.close_code is None for ws in flooders)
        await observer.check(http, live)
        assert any(kind == "chat" for _, kind in observer.events)
    finally:
        listening.cancel()
        for ws in flooders:
            await ws.close()
        await observer.ws.close()
    assert_no_traceback(served[1])


async def test_a_flood_on_the_personal_channel_from_many_sockets(
    http: httpx.AsyncClient, served: tuple[str, Path]
) -> None:
    """One user fills the ``/ws/me`` cap (the next socket is refused with 4429) and floods
    all of them at once: each answers every frame and stays open."""
    _, token = await viewer_token(http)
    base = str(http.base_url).replace("http://", "ws://").rstrip("/")
    sockets = [await connect(f"{base}/ws/me?token={token}") for _ in range(5)]
    try:
        for ws in sockets:
            await next_frame(ws, "welcome")
        async with connect(f"{base}/ws/me?token={token}") as sixth:
            assert (await next_frame(sixth, "error"))["data"]["code"] == "too_many_sockets"
            with pytest.raises(ConnectionClosed) as closed:
                await sixth.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4429
        answers = await asyncio.gather(*(flood(ws, rounds=25) for ws in sockets))
        for received in answers:
            codes = [f["data"]["code"] for f in received if f["type"] == "error"]
            assert set(codes) <= ME_CODES, codes
            assert len(codes) == 25 * len(FLOOD)  # a ping is all this channel takes
        assert all(ws.close_code is None for ws in sockets)
    finally:
        for ws in sockets:
            await ws.close()
    assert_no_traceback(served[1])
