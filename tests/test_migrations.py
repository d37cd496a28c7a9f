from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

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


LEGACY_DECLARATION = {
    "id": 1,
    "shipment_id": 1,
    "language": "ru",
    "currency": "EUR",
    "declared_value": "250.00",
    "gross_weight_grams": 1000,
    "earlier_value": "0",
    "duty_free_allowance": "200",
    "duty": "7.50",
    "recipient": "{}",
    "lines": "[]",
}
FILED_AT = "'2026-05-02 10:00:00+00:00'"  # a literal: each driver reads it as a timestamp

# Its order and merchant are left out: only the declaration's own key is checked on the way.
LEGACY_SHIPMENT = (
    "INSERT INTO shipments (id, order_id, merchant_id, warehouse_code, status, legs,"
    " handling_days, planned_days, eta, destination_country, destination_city, weight_grams,"
    " items, created_at, updated_at) VALUES (:id, :id, 1, 'DEDUI', 'created', '[]', 1, 10,"
    f" '2026-05-12', 'RU', '{{}}', 1000, '[]', {FILED_AT}, {FILED_AT})"
)


async def _execute(url: str, sql: str, params: dict[str, object] | None = None) -> list[Any]:
    """Run one statement with foreign keys unchecked (a lone row, without its shipment)."""
    if url.startswith("sqlite"):  # plain sqlite3 leaves foreign keys unchecked
        with closing(sqlite3.connect(make_url(url).database or "")) as db:
            db.row_factory = sqlite3.Row
            found = [dict(r) for r in db.execute(sql, params or {})]
            db.commit()
            return found
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET session_replication_role = replica"))
            result = await conn.execute(text(sql), params or {})
            rows = list(result.mappings()) if result.returns_rows else []
            await conn.commit()
            return rows
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_declarations_filed_before_dated_rules_get_their_rule(
    backend: str, tmp_path: Path
) -> None:
    """0006 turns a stored union into the rule the declaration was assessed under, with its
    legal basis, no VAT and the duty as the total; going down gives the union back."""
    if backend == "postgresql":
        require_postgres()
        url = postgres_url()
        await wipe_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await asyncio.to_thread(upgrade, url, "0005")
    columns = ", ".join(["rule", *LEGACY_DECLARATION, "created_at"])
    values = ", ".join([*(f":{name}" for name in ["rule", *LEGACY_DECLARATION]), FILED_AT])
    for i, union in enumerate(["EAEU", "UZ"], start=1):
        await _execute(url, LEGACY_SHIPMENT, {"id": i})
        await _execute(
            url,
            f"INSERT INTO customs_declarations ({columns}) VALUES ({values})",
            {**LEGACY_DECLARATION, "id": i, "shipment_id": i, "rule": union},
        )
    # Only as far as 0006: later revisions rebuild tables on SQLite, which the lone rows
    # (shipments without their order) would not survive.
    await asyncio.to_thread(upgrade, url, "0006")
    rows = await _execute(
        url,
        "SELECT rule, customs_union, legal_basis, border_date, declared_by, vat, total"
        " FROM customs_declarations ORDER BY id",
    )
    assert [(r["rule"], r["customs_union"]) for r in rows] == [
        ("EAEU-2020-PERSONAL", "EAEU"),
        ("UZ-2025-COURIER", "UZ"),
    ]
    assert rows[0]["legal_basis"].startswith("EEC Council decision No. 107")
    assert rows[1]["legal_basis"].startswith("Uzbekistan: international courier")
    assert all(r["border_date"] is None and r["declared_by"] is None for r in rows)
    assert [(r["vat"], r["total"]) for r in rows] == [("0", "7.50"), ("0", "7.50")]
    # A rule id as long as the column now allows is stored whole.
    await _execute(url, "UPDATE customs_declarations SET rule = :r WHERE id = 2", {"r": "X" * 40})

    await asyncio.to_thread(downgrade, url, "0005")
    back = await _execute(url, "SELECT rule FROM customs_declarations ORDER BY id")
    assert [r["rule"] for r in back] == ["EAEU", "UZ"]
    await asyncio.to_thread(downgrade, url, "base")
    if backend == "postgresql":
        await wipe_postgres(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_allowances_raised_before_get_the_courier_rule(backend: str, tmp_path: Path) -> None:
    """0007 keys a monthly allowance by its rule: those raised before (by union, ``UZ``)
    were all raised under ``UZ-2025-COURIER``; orders placed before went by courier."""
    if backend == "postgresql":
        require_postgres()
        url = postgres_url()
        await wipe_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await asyncio.to_thread(upgrade, url, "0006")
    await _execute(
        url,
        "INSERT INTO customs_allowances (rule, recipient_key, month, declared_minor)"
        " VALUES ('UZ', 'tel:998901234567', '2026-11', 17400)",
    )
    await asyncio.to_thread(upgrade, url, "0007")
    rows = await _execute(url, "SELECT rule, declared_minor FROM customs_allowances")
    assert [(r["rule"], r["declared_minor"]) for r in rows] == [("UZ-2025-COURIER", 17400)]
    await asyncio.to_thread(downgrade, url, "0006")
    rows = await _execute(url, "SELECT rule FROM customs_allowances")
    assert [r["rule"] for r in rows] == ["UZ"]
    await asyncio.to_thread(downgrade, url, "base")
    if backend == "postgresql":
        await wipe_postgres(url)


LINKED_AT = "'2026-05-02 10:00:00+00:00'"  # a literal: each driver reads it as a timestamp


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_links_made_before_invitations_are_accepted(backend: str, tmp_path: Path) -> None:
    """A merchant-host link from before 0009 is accepted when it was made, and the host
    keeps streaming; invitations come and go with the revision."""
    if backend == "postgresql":
        require_postgres()
        url = postgres_url()
        await wipe_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await asyncio.to_thread(upgrade, url, "0008")
    for uid, role in ((1, "merchant"), (2, "host")):
        await _execute(
            url,
            "INSERT INTO users (id, email, password_hash, display_name, role, locale, currency,"
            f" is_active, created_at) VALUES ({uid}, 'u{uid}@example.kz', 'x', 'U', '{role}',"
            f" 'ru', 'RUB', true, {LINKED_AT})",
        )
    await _execute(
        url,
        "INSERT INTO merchants (id, owner_id, name, currency, created_at)"
        f" VALUES (1, 1, 'M', 'RUB', {LINKED_AT})",
    )
    await _execute(
        url,
        f"INSERT INTO merchant_hosts (merchant_id, host_id, created_at) VALUES (1, 2, {LINKED_AT})",
    )
    await asyncio.to_thread(upgrade, url, "0009")
    rows = await _execute(
        url, "SELECT merchant_id, host_id, accepted_at = created_at AS same FROM merchant_hosts"
    )
    assert [(r["merchant_id"], r["host_id"], bool(r["same"])) for r in rows] == [(1, 2, True)]
    await _execute(
        url,
        "INSERT INTO host_invitations (merchant_id, email, created_at)"
        f" VALUES (1, 'new@example.kz', {LINKED_AT})",
    )

    await asyncio.to_thread(downgrade, url, "0008")
    rows = await _execute(url, "SELECT merchant_id, host_id FROM merchant_hosts")
    assert [(r["merchant_id"], r["host_id"]) for r in rows] == [(1, 2)]
    for table in ("merchant_hosts", "merchants", "users"):
        await _execute(url, f"DELETE FROM {table}")
    await asyncio.to_thread(downgrade, url, "base")
    if backend == "postgresql":
        await wipe_postgres(url)
