from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect

from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.db import create_engine
from livecommerce.migrate import DatabaseNotMigrated, downgrade, upgrade
from tests.fixtures.database import postgres_url, require_postgres, wipe_postgres


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_migrations_go_up_and_down(backend: str, tmp_path: Path) -> None:
    """The schema is created, removed and created again on both databases."""
    if backend == "postgresql":
        require_postgres()
        url = postgres_url()
        await wipe_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await asyncio.to_thread(upgrade, url)
    assert {"users", "merchants", "products", "stock", "warehouses", "exchange_rates"} <= (
        await _tables(url)
    )
    await asyncio.to_thread(downgrade, url, "base")
    assert await _tables(url) <= {"alembic_version"}
    await asyncio.to_thread(upgrade, url)
    if backend == "postgresql":
        await wipe_postgres(url)  # leave nothing behind for the session's database fixture


async def test_app_refuses_unmigrated_database(tmp_path: Path) -> None:
    """The app will not start on a database without the schema."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", data_dir=tmp_path
    )
    app = create_app(settings)
    with pytest.raises(DatabaseNotMigrated, match="livecommerce migrate"):
        async with app.router.lifespan_context(app):
            pass


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    """Without LIVECOMMERCE_SECRET_KEY a key is generated in the data dir and reused."""
    settings = Settings(data_dir=tmp_path / "data")
    first = settings.resolved_secret_key()
    assert len(first) >= 40
    assert Settings(data_dir=tmp_path / "data").resolved_secret_key() == first
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """LIVECOMMERCE_* variables configure the service; CORS origins are comma-separated."""
    monkeypatch.setenv("LIVECOMMERCE_CORS_ORIGINS", "https://a.kz, https://b.uz")
    monkeypatch.setenv("LIVECOMMERCE_DEFAULT_LOCALE", "kk")
    monkeypatch.setenv("LIVECOMMERCE_DATABASE_URL", "postgresql+asyncpg://u@h/db")
    settings = Settings()
    assert settings.cors_origins == ["https://a.kz", "https://b.uz"]
    assert settings.default_locale == "kk"
    assert not settings.is_sqlite
