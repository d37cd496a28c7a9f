from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from livecommerce.db import create_engine, session_factory, session_scope
from tests.fixtures.factories import account, product_body


async def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """On SQLite a read-only request reads while a write transaction holds the lock."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rw.db'}")
    factory = session_factory(engine)
    try:
        async with session_scope(factory) as setup:
            await setup.execute(text("CREATE TABLE t (x INTEGER)"))
        async with session_scope(factory) as writer:
            await writer.execute(text("INSERT INTO t VALUES (1)"))

            async def read() -> int:
                async with session_scope(factory, read_only=True) as reader:
                    return int((await reader.execute(text("SELECT count(*) FROM t"))).scalar_one())

            # The writer has not committed: the reader sees the old snapshot, without waiting.
            assert await asyncio.wait_for(read(), timeout=5) == 0
        assert await read() == 1
    finally:
        await engine.dispose()


async def test_effects_run_only_after_commit(tmp_path: Path) -> None:
    """after_commit effects run once the transaction commits and are dropped on rollback."""
    from livecommerce.db import after_commit

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'fx.db'}")
    factory = session_factory(engine)
    ran: list[str] = []

    async def effect(name: str) -> None:
        ran.append(name)

    try:
        async with session_scope(factory) as session:
            after_commit(session, lambda: effect("committed"))
            assert ran == []
        assert ran == ["committed"]
        try:
            async with session_scope(factory) as session:
                after_commit(session, lambda: effect("rolled back"))
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        assert ran == ["committed"]
    finally:
        await engine.dispose()


async def test_failed_commit_is_an_error_not_a_success(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit happens before the response: if it fails the client gets a 500, not 201."""
    from livecommerce import db

    _, headers = await account(client, role="merchant")

    async def failing_commit(session: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(db, "commit_and_run_effects", failing_commit)
    app = client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
        response = await raw.post("/api/v1/products", json=product_body(), headers=headers)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
