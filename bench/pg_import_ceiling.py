"""How fast can PostgreSQL itself take a product import? The ceiling for ``bench/catalog.py``.

Usage (from the repository root)::

    .venv/bin/python bench/pg_import_ceiling.py [--rows 100000] [--batch 1000]

The same generated file as ``bench/catalog.py`` is read and turned into finished product rows
(translations, search text, prices in minor units) *before* the clock starts. Then only the
database work is timed, with the fastest statements asyncpg offers: each batch goes through
``COPY`` into a staging table, one set-based ``INSERT ... SELECT ... ON CONFLICT`` into
``products`` and one ``unnest`` upsert of its stock levels, in one transaction. No HTTP, no CSV
parsing, no validation: whatever the service does on top can only be slower.

Three variants run on a freshly migrated database (``LIVECOMMERCE_BENCH_DATABASE_URL``, default
``postgresql+asyncpg://postgres@127.0.0.1:5432/livecommerce_bench``; its public schema is
dropped and recreated):

- ``full``: the schema as migrated, search text of SKU, titles and descriptions;
- ``titles``: the same index, search text of SKU and titles only;
- ``no search index``: the trigram index dropped (search would scan the table).

The script prints figures only; it never judges them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import catalog as catalog_bench  # the sibling benchmark: same generator, same database

from livecommerce.catalog.service import build_search_text
from livecommerce.config import SUPPORTED_LOCALES
from livecommerce.i18n.money import Money

COLUMNS = (
    "merchant_id",
    "sku",
    "title",
    "description",
    "price_minor",
    "price_currency",
    "weight_grams",
    "hs_code",
    "origin_country",
    "image_urls",
    "search_text",
    "import_id",
    "created_at",
    "updated_at",
    "deleted_at",
)
UPSERT = f"""
INSERT INTO products ({", ".join(COLUMNS)}) SELECT {", ".join(COLUMNS)} FROM stage
ON CONFLICT (merchant_id, sku) DO UPDATE SET
{", ".join(f"{c} = excluded.{c}" for c in COLUMNS[2:] if c != "created_at")}
RETURNING id, sku
"""
STOCK_UPSERT = """
INSERT INTO stock (product_id, warehouse_code, quantity, updated_at)
SELECT p, w, q, now() FROM unnest($1::integer[], $2::varchar[], $3::integer[]) AS u(p, w, q)
ON CONFLICT (product_id, warehouse_code) DO UPDATE SET quantity = excluded.quantity
"""


def product_rows(path: Path, merchant_id: int, with_descriptions: bool) -> list[Any]:
    now = datetime.now(UTC)
    rows = []
    with path.open(encoding="utf-8", newline="") as fh:
        for record in csv.DictReader(fh):
            title = {loc: t for loc in SUPPORTED_LOCALES if (t := record.get(f"title_{loc}"))}
            description = {
                loc: t for loc in SUPPORTED_LOCALES if (t := record.get(f"description_{loc}"))
            }
            price = Money(Decimal(record["price"]), record["currency"])
            stock = {
                code: int(record[f"stock_{code}"])
                for code in ("DEDUI", "KZALA")
                if record[f"stock_{code}"]
            }
            search = build_search_text(
                record["sku"], title, description if with_descriptions else {}
            )
            images = [u for u in record["image_urls"].split("|") if u]
            product = (
                merchant_id,
                record["sku"],
                json.dumps(title, ensure_ascii=False),
                json.dumps(description, ensure_ascii=False),
                price.to_minor(),
                price.currency,
                int(record["weight_grams"]),
                record["hs_code"],
                record["origin_country"],
                json.dumps(images),
                search,
                "ceiling",
                now,
                now,
                None,
            )
            rows.append((product, stock))
    return rows


async def load(dsn: str, rows: list[Any], batch: int, drop_index: bool) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE stock, products")
        if drop_index:
            await conn.execute("DROP INDEX IF EXISTS ix_products_search_trgm")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE stage (LIKE products INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                await conn.execute("TRUNCATE stage")
                await conn.copy_records_to_table(
                    "stage", records=[p for p, _ in chunk], columns=COLUMNS
                )
                ids = {sku: pid for pid, sku in await conn.fetch(UPSERT)}
                levels = [
                    (ids[p[1]], code, qty) for p, stock in chunk for code, qty in stock.items()
                ]
                await conn.execute(
                    STOCK_UPSERT,
                    [x[0] for x in levels],
                    [x[1] for x in levels],
                    [x[2] for x in levels],
                )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def seed_merchant(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (email, password_hash, display_name, role, locale, currency,"
            " is_active, created_at) VALUES ('ceiling@bench.invalid', '-', 'Bench', 'merchant',"
            " 'ru', 'KZT', true, now()) RETURNING id"
        )
        merchant_id: int = await conn.fetchval(
            "INSERT INTO merchants (owner_id, name, currency, created_at)"
            " VALUES ($1, 'Bench', 'KZT', now()) RETURNING id",
            user_id,
        )
        return merchant_id
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    url = os.environ.get("LIVECOMMERCE_BENCH_DATABASE_URL", catalog_bench.DEFAULT_PG_URL)
    try:
        version = catalog_bench.reset_postgres(url)
    except catalog_bench.BackendUnavailable as exc:
        print(f"PostgreSQL unavailable, nothing measured: {exc}")
        return 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    env["LIVECOMMERCE_DATABASE_URL"] = url
    with tempfile.TemporaryDirectory() as tmp:
        env["LIVECOMMERCE_DATA_DIR"] = tmp
        subprocess.run(
            [catalog_bench.PYTHON, "-m", "livecommerce.cli", "migrate"],
            env=env,
            check=True,
            capture_output=True,
        )
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        merchant_id = asyncio.run(seed_merchant(dsn))
        path = Path(tmp) / "products.csv"
        catalog_bench.write_csv(path, args.rows)
        print(catalog_bench.machine_line())
        print(f"PostgreSQL {version}; {args.rows:,} rows in batches of {args.batch:,}")
        print("| variant | seconds | rows/s |")
        print("|---|---:|---:|")
        for label, with_descriptions, drop_index in (
            ("full (SKU, titles, descriptions)", True, False),
            ("titles (SKU and titles only)", False, False),
            ("no search index", True, True),
        ):
            rows = product_rows(path, merchant_id, with_descriptions)
            seconds = asyncio.run(load(dsn, rows, args.batch, drop_index))
            print(f"| {label} | {seconds:.2f} | {args.rows / seconds:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
