"""The servers ``bench/fanout.py`` compares, one per process.

    python bench/fanout_servers.py ceiling|naive|socketio|livecommerce --port N

Every server keeps viewers of one room, each with a locale (kk, ru or uz) taken from the
query string, and publishes announcement events of about 200 bytes whose text is in the
viewer's language, on ``POST /bench/publish?count=N&rate=R`` (R events a second; 0 means as
fast as the server goes). Each event carries ``t0``, the time it was due, so the client can
measure publish-to-receive latency. The request answers once every event is published.

- ``ceiling``: the least work a fan-out can do. The ``websockets`` library does the
  handshake; each event is encoded and framed once per locale and those bytes are written
  straight to each socket's transport.
- ``naive``: a FastAPI room as one writes it first: ``await ws.send_json(...)`` per viewer,
  building the viewer's message each time.
- ``socketio``: python-socketio's ``AsyncServer`` under uvicorn, one Socket.IO room per
  locale, ``await sio.emit(..., room=locale)`` per locale and event.
- ``livecommerce``: the real application (``create_app``) run exactly as ``livecommerce
  serve`` runs it, plus the publish route, which hands events to the room's broker the way
  the announcement endpoint does after its commit. Viewers connect to ``/ws/streams/{id}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

ROOM = "bench"
# About 200 bytes per frame in every language once wrapped in the envelope.
TEXTS = {
    "kk": "Тікелей эфирде жаңа тауар: жібек орамал, бүгін ғана жеңілдік!",
    "ru": "Новинка в эфире: шёлковый платок, скидка только сегодня!",
    "uz": "Efirda yangi mahsulot: ipak roʻmol, faqat bugun chegirma bilan, shoshiling!!",
}
LOCALES = tuple(TEXTS)


def envelope(seq: int, locale: str, t0: float) -> dict[str, Any]:
    return {
        "type": "announcement",
        "seq": seq,
        "ts": datetime.now(UTC).isoformat(),
        "data": {"text": TEXTS[locale], "t0": t0},
    }


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def paced(
    count: int, rate: float, publish_one: Callable[[int, float], Awaitable[None]]
) -> None:
    """Publish ``count`` events, ``rate`` a second; rate 0 is a burst: back to back, without
    giving the event loop a turn in between unless publishing itself waits."""
    loop = asyncio.get_running_loop()
    start, wall = loop.time(), time.time()
    for n in range(count):
        if rate > 0:
            due = n / rate
            delay = start + due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = wall + due
        else:
            t0 = time.time()
        await publish_one(n + 1, t0)


def locale_of(query: str) -> str:
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "locale" and value in TEXTS:
            return value
    return "ru"


def parse_publish(query: str) -> tuple[int, float]:
    params = dict(part.partition("=")[::2] for part in query.split("&") if part)
    return int(params.get("count", "1")), float(params.get("rate", "0"))


# --- (a) ceiling --------------------------------------------------------------------------


async def run_ceiling(port: int) -> None:
    from http import HTTPStatus

    from websockets.asyncio.server import ServerConnection, serve
    from websockets.datastructures import Headers
    from websockets.http11 import Request as HandshakeRequest
    from websockets.http11 import Response

    from livecommerce.rooms.wire import text_frame

    viewers: dict[str, set[Any]] = {locale: set() for locale in LOCALES}

    async def publish_one(seq: int, t0: float) -> None:
        for locale, transports in viewers.items():
            data = text_frame(dumps(envelope(seq, locale, t0)).encode())
            for transport in transports:
                transport.write(data)

    async def process_request(
        connection: ServerConnection, request: HandshakeRequest
    ) -> Response | None:
        path, _, query = request.path.partition("?")
        if path != "/bench/publish":
            return None
        count, rate = parse_publish(query)
        await paced(count, rate, publish_one)
        return Response(HTTPStatus.OK, "OK", Headers([("Content-Length", "2")]), b"ok")

    async def handler(connection: ServerConnection) -> None:
        locale = locale_of(connection.request.path.partition("?")[2] if connection.request else "")
        transport = connection.transport
        viewers[locale].add(transport)
        try:
            await connection.send(dumps({"type": "welcome"}))
            await connection.wait_closed()
        finally:
            viewers[locale].discard(transport)

    async with serve(
        handler,
        "127.0.0.1",
        port,
        process_request=process_request,
        compression=None,
        max_queue=None,
        ping_interval=20,
        ping_timeout=20,
    ) as server:
        await server.serve_forever()


# --- (b) naive FastAPI ------------------------------------------------------------------------


def naive_app() -> Any:
    app = FastAPI()
    viewers: list[tuple[WebSocket, str]] = []

    @app.websocket("/ws/{room}")
    async def room(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        member = (websocket, websocket.query_params.get("locale", "ru"))
        viewers.append(member)
        await websocket.send_json({"type": "welcome"})
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            viewers.remove(member)

    async def publish_one(seq: int, t0: float) -> None:
        for websocket, locale in list(viewers):
            try:
                await websocket.send_json(envelope(seq, locale, t0))
            except Exception:  # a viewer that left meanwhile
                continue

    @app.post("/bench/publish")
    async def publish(count: int = 1, rate: float = 0) -> dict[str, int]:
        await paced(count, rate, publish_one)
        return {"published": count}

    return app


# --- (c) python-socketio ------------------------------------------------------------------


def socketio_app() -> Any:
    import socketio
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[], transports=["websocket"])

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await sio.enter_room(sid, locale_of(environ.get("QUERY_STRING", "")))

    async def publish_one(seq: int, t0: float) -> None:
        for locale in LOCALES:
            await sio.emit("announcement", envelope(seq, locale, t0), room=locale)

    async def publish(request: Request) -> JSONResponse:
        count, rate = parse_publish(request.url.query)
        await paced(count, rate, publish_one)
        return JSONResponse({"published": count})

    other = Starlette(routes=[Route("/bench/publish", publish, methods=["POST"])])
    return socketio.ASGIApp(sio, other_asgi_app=other)


# --- (d) livecommerce -----------------------------------------------------------------------


def livecommerce_app() -> Any:
    from livecommerce.app import create_app
    from livecommerce.config import Settings
    from livecommerce.rooms.hub import Hub
    from livecommerce.rooms.render import encode_event, text
    from livecommerce.streams.service import room_of

    app = create_app(Settings())

    @app.post("/bench/publish")
    async def publish(
        request: Request, stream_id: int, count: int = 1, rate: float = 0
    ) -> dict[str, int]:
        hub: Hub = request.app.state.hub
        room = room_of(stream_id)

        async def publish_one(_seq: int, t0: float) -> None:
            await hub.broker.publish(
                room, encode_event("announcement", {"text": text(TEXTS), "t0": t0})
            )

        await paced(count, rate, publish_one)
        return {"published": count}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("ceiling", "naive", "socketio", "livecommerce"))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.kind == "ceiling":
        import uvloop

        uvloop.run(run_ceiling(args.port))
        return
    options: dict[str, Any] = {}
    if args.kind == "livecommerce":
        from livecommerce.rooms.server import WEBSOCKET_OPTIONS

        app, options = livecommerce_app(), dict(WEBSOCKET_OPTIONS)
    elif args.kind == "naive":
        app = naive_app()
    else:
        app = socketio_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", **options)


if __name__ == "__main__":
    main()
