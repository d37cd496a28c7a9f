"""No log line of ``livecommerce serve`` carries a token, whatever the log level."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from livecommerce.logs import REDACTED, RedactSecrets, redact
from tests.fixtures.factories import account
from tests.fixtures.redis import prepare_redis
from tests.fixtures.server import migrate, running_server, server_env

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


async def _use_tokens(base: str) -> list[str]:
    """A guest and a signed-in viewer connect with ``?token=`` and call the API with a
    bearer header (and, wrongly, with ``?token=`` in an HTTP URL); returns their tokens."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        guest = (await http.post("/api/v1/auth/guest")).json()["access_token"]
        _, headers = await account(http)
        token = headers["Authorization"].removeprefix("Bearer ")
        me = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        await http.get(f"/api/v1/me?token={token}", headers={"Authorization": f"Bearer {guest}"})
        ws_base = base.replace("http://", "ws://")
        for used in (guest, token):
            for path in ("/ws/streams/1", "/ws/me"):
                # Welcomed or refused (no stream 1; a guest has no /ws/me): logged either way.
                async with connect(
                    f"{ws_base}{path}?token={used}&locale=en",
                    additional_headers={"Authorization": f"Bearer {used}"},
                ) as ws:
                    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"]
    return [guest, token]


@pytest.mark.parametrize(
    ("level", "workers"), [("info", 1), ("trace", 1), ("info", 2)], ids=["info", "trace", "workers"]
)
async def test_the_server_log_never_holds_a_token(tmp_path: Path, level: str, workers: int) -> None:
    """At info level (access lines, WebSocket connects), at trace level (every request's
    scope and headers) and in each of several API processes, the server's log has the
    redacted marker where a token was, never the token."""
    extra = {"redis_url": await prepare_redis()} if workers > 1 else {}
    env = server_env(tmp_path, log_level=level, **extra)
    migrate(env)
    log = tmp_path / "server.log"
    with running_server(env, log, "--workers", str(workers)) as base:
        tokens = await _use_tokens(base)
    text = log.read_text()
    assert '"WebSocket /ws/streams/1?token=REDACTED&locale=en" [accepted]' in text, text[-3000:]
    assert "GET /api/v1/me?token=REDACTED HTTP/1.1" in text, text[-3000:]
    if level == "trace":  # the handshake's headers are logged from debug level on
        assert "< authorization: Bearer REDACTED" in text, text[-3000:]
    for token in tokens:
        assert token not in text
        for part in token.split("."):
            assert part not in text  # not even the signature on its own


def test_redaction_of_headers_queries_and_tracebacks() -> None:
    """The filter rewrites the message, its arguments and the traceback of a record."""
    assert redact(f"GET /ws/me?locale=ru&token={JWT}&x=1") == (
        f"GET /ws/me?locale=ru&token={REDACTED}&x=1"
    )
    assert redact("Authorization: Bearer abc.def") == f"Authorization: Bearer {REDACTED}"
    assert redact("authorization: Basic dXNlcjpw") == f"authorization: {REDACTED}"
    assert redact(f"(b'authorization', b'Bearer {JWT}')") == (
        f"(b'authorization', b'Bearer {REDACTED}')"
    )
    assert redact(f"query_string: b'token={JWT}'") == f"query_string: b'token={REDACTED}'"
    assert redact("/streams?tokens=3&page=2") == "/streams?tokens=3&page=2"
    try:
        raise ValueError(f"bad {JWT}")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "%s - %s %d", (f"/ws?token={JWT}", JWT, 3), True
        )
        record.exc_info = sys.exc_info()
    assert RedactSecrets().filter(record)
    formatted = logging.Formatter().format(record)
    assert JWT not in formatted
    assert f"/ws?token={REDACTED} - {REDACTED} 3" in formatted
    assert f"ValueError: bad {REDACTED}" in formatted
    spelled = logging.LogRecord("x", logging.INFO, __file__, 1, f"token? {JWT}", None, None)
    RedactSecrets().filter(spelled)
    assert spelled.getMessage() == f"token? {REDACTED}"
