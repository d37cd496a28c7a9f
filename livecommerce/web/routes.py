"""Pages of the browser client, its texts, and its static files, with strict headers.

The pages are plain HTML that load ES modules from ``/static``; everything they show comes
from the public API and the WebSocket rooms, with the user's own token. Nothing secret is
in a page. The Content-Security-Policy allows scripts, styles and connections to this
origin only (WebSocket included), images from anywhere over HTTPS (product photos), and
media from HTTPS (stream playback URLs).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livecommerce.config import SUPPORTED_LOCALES
from livecommerce.errors import NotFound
from livecommerce.web.strings import translated

HERE = Path(__file__).parent
STATIC = HERE / "static"

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https:",
        "media-src 'self' https: blob:",
        "connect-src 'self' ws: wss:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # Pages are tiny and change with each release: always revalidate.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


class UnknownWebLocale(NotFound):
    code = "unsupported_locale"


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers=PAGE_HEADERS)


@router.get("/")
async def home() -> FileResponse:
    return _page("index.html")


@router.get("/live/{stream_id:int}")
async def live(stream_id: int) -> FileResponse:
    return _page("index.html")


@router.get("/host")
async def host() -> FileResponse:
    return _page("host.html")


@router.get("/merchant")
async def merchant() -> FileResponse:
    return _page("merchant.html")


@router.get("/web/i18n/{locale}.json")
async def texts(locale: str) -> JSONResponse:
    """Every text of the pages in one language (from the server's catalogs)."""
    if locale not in SUPPORTED_LOCALES:
        raise UnknownWebLocale()
    return JSONResponse(
        translated(locale),
        headers={**PAGE_HEADERS, "Cache-Control": "public, max-age=300"},
    )


class StrictStatic:
    """Static files with the same headers as the pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                for key, value in PAGE_HEADERS.items():
                    if key != "Cache-Control":
                        headers.append((key.lower().encode(), value.encode()))
                headers.append((b"cache-control", b"no-cache"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def static_app() -> ASGIApp:
    return StrictStatic(StaticFiles(directory=STATIC))
