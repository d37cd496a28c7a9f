"""An exhausted database pool is an overload to retry (503), never a 500."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.exc import TimeoutError as PoolTimeout

from livecommerce.app import create_app
from tests.conftest import make_settings
from tests.fixtures.database import TestDatabase


async def test_no_free_connection_is_a_503_with_retry_after(
    database: TestDatabase, tmp_path: Path
) -> None:
    """Every pooled connection busy past the pool timeout: 503 service_unavailable, localized,
    with Retry-After."""
    app = create_app(make_settings(database.url, tmp_path, database_pool_timeout=0.3))
    async with app.router.lifespan_context(app):
        held = []
        try:
            while len(held) < 100:  # take every connection the pool will give
                try:
                    held.append(await app.state.engine.connect())
                except PoolTimeout:
                    break
            assert held and len(held) < 100
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                busy = await client.get("/api/v1/products?locale=kk")
        finally:
            for conn in held:
                await conn.close()
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["code"] == "service_unavailable"
    assert busy.json()["error"]["details"] == {"database": "busy"}
