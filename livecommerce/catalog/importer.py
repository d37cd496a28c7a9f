"""Bulk CSV import of products, streamed in batches.

Memory stays flat as files grow: the file is read row by row, rows are written a batch at a
time, and a SKU repeated in the file is recognised through ``products.import_id`` rather
than a set of every SKU seen. A bad row is reported and skipped; it never stops good rows.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import io
import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from livecommerce.accounts.models import Merchant
from livecommerce.catalog.models import Product
from livecommerce.catalog.schemas import (
    Country,
    Description,
    HsCode,
    ImageUrls,
    Price,
    Sku,
    TitlePatch,
    WeightCell,
)
from livecommerce.catalog.service import build_search_text, merge_translations
from livecommerce.config import SUPPORTED_LOCALES
from livecommerce.db import dialect_insert
from livecommerce.errors import ValidationFailed
from livecommerce.i18n.messages import N_
from livecommerce.inventory import service as inventory
from livecommerce.schemas import StrictModel
from livecommerce.sqltypes import utcnow

REQUIRED_COLUMNS = ("sku", "price", "weight_grams", "hs_code", "origin_country")
OPTIONAL_COLUMNS = ("currency", "image_urls")
MAX_REPORTED_ERRORS = 1000
IMPORT_LOCK_NAMESPACE = 0x1C5F  # first key of the (namespace, merchant) advisory lock
MAX_FIELD_BYTES = 64 * 1024
ENCODINGS = ("utf-8", "cp1251", "utf-16")


class CsvFileError(ValidationFailed):
    code = "csv_invalid"
    message = N_("The file cannot be read as CSV.")


class CsvEmpty(CsvFileError):
    code = "csv_empty"
    message = N_("The file is empty or has no header row.")


class CsvMissingColumns(CsvFileError):
    code = "csv_missing_columns"
    message = N_("Required columns are missing: %(columns)s.")


class CsvNoTitle(CsvFileError):
    code = "csv_no_title"
    message = N_("Add at least one title column, for example title_ru.")


class CsvUnknownWarehouse(CsvFileError):
    code = "csv_unknown_warehouse"
    message = N_("These stock columns name no known warehouse: %(columns)s.")


class CsvDuplicateColumn(CsvFileError):
    code = "csv_duplicate_column"
    message = N_("Column %(column)s appears more than once.")


class CsvUndecodable(CsvFileError):
    code = "csv_undecodable"
    message = N_("The file is not valid in the chosen encoding. Check the encoding parameter.")


class UnsupportedEncoding(ValidationFailed):
    code = "unsupported_encoding"
    message = N_("This file encoding is not supported. Use one of: %(supported)s.")


# Row error codes and their messages; the route translates them into the request's locale.
ROW_MESSAGES = {
    "bad_encoding": N_("The row contains bytes that are not valid in the file's encoding."),
    "malformed_row": N_("The row has more cells than the header."),
    "duplicate_sku": N_("This SKU appears more than once in the file; the first row was kept."),
    "negative_stock": N_("Stock cannot be negative."),
    "invalid_stock": N_("Stock must be a whole number."),
    "translation_required": N_("A new product needs at least one title."),
    "field_too_large": N_("A cell is larger than 64 KB."),
}


class ImportRow(StrictModel):
    sku: Sku
    title: TitlePatch
    description: Description
    price: Price
    weight_grams: WeightCell
    hs_code: HsCode
    origin_country: Country
    image_urls: ImageUrls | None = None


@dataclass
class RowError:
    row: int
    sku: str | None
    code: str
    column: str | None
    params: dict[str, Any] = field(default_factory=dict)
    # Pydantic's own message type (e.g. "missing", "invalid_hs_code") when the row failed
    # validation; rendered with the same localized texts as API validation errors.
    validation_type: str | None = None


@dataclass
class ImportResult:
    import_id: str
    rows_total: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def errors_truncated(self) -> bool:
        return self.failed > len(self.errors)

    def fail(self, error: RowError) -> None:
        self.failed += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)


@dataclass
class _Pending:
    row: int
    data: ImportRow
    stock: dict[str, int]


@dataclass
class _Layout:
    index: dict[str, int]
    titles: dict[str, int]
    descriptions: dict[str, int]
    stock: dict[str, int]
    width: int


def _open_text(binary: IO[bytes], encoding: str) -> io.TextIOWrapper:
    name = encoding.strip().lower().replace("_", "-")
    try:
        codec = codecs.lookup(name).name
    except LookupError as exc:
        raise UnsupportedEncoding(supported=", ".join(ENCODINGS)) from exc
    if codec not in {codecs.lookup(e).name for e in ENCODINGS}:
        raise UnsupportedEncoding(supported=", ".join(ENCODINGS))
    if codec == "utf-8":
        codec = "utf-8-sig"  # spreadsheets often start UTF-8 files with a byte-order mark
    # Undecodable input is kept as lone surrogates so that the row holding it is reported
    # alone instead of the whole file failing: surrogateescape for byte-oriented codecs,
    # surrogatepass for UTF-16, whose own lone surrogates it lets through.
    errors = "surrogatepass" if codec.startswith("utf-16") else "surrogateescape"
    return io.TextIOWrapper(binary, encoding=codec, errors=errors, newline="")


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _layout(header: list[str], warehouses: list[str], result: ImportResult) -> _Layout:
    names = [h.strip().lower() for h in header]
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        if not name:
            continue
        if name in index:
            raise CsvDuplicateColumn(column=header[position].strip())
        index[name] = position
    missing = [c for c in REQUIRED_COLUMNS if c not in index]
    if missing:
        raise CsvMissingColumns(columns=", ".join(missing))
    titles = {loc: index[f"title_{loc}"] for loc in SUPPORTED_LOCALES if f"title_{loc}" in index}
    if not titles:
        raise CsvNoTitle()
    descriptions = {
        loc: index[f"description_{loc}"]
        for loc in SUPPORTED_LOCALES
        if f"description_{loc}" in index
    }
    stock: dict[str, int] = {}
    unknown = []
    for name, position in index.items():
        if name.startswith("stock_"):
            code = name.removeprefix("stock_").upper()
            if code in warehouses:
                stock[code] = position
            else:
                unknown.append(header[position].strip())
    if unknown:
        raise CsvUnknownWarehouse(columns=", ".join(unknown))
    known = {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS}
    for name, position in index.items():
        if (name not in known and not name.startswith(("title_", "description_", "stock_"))) or (
            name.startswith(("title_", "description_"))
            and name.split("_", 1)[1] not in SUPPORTED_LOCALES
        ):
            result.ignored_columns.append(header[position].strip())
    return _Layout(index, titles, descriptions, stock, len(header))


def _records(text: io.TextIOWrapper) -> Iterator[tuple[int, list[str] | None]]:
    """(row number, cells) per record; cells is None for a record csv could not parse."""
    try:
        header_line = text.readline()
    except UnicodeDecodeError as exc:
        raise CsvUndecodable() from exc
    if not header_line.strip():
        raise CsvEmpty()
    reader = csv.reader(
        itertools.chain([header_line], text), delimiter=_sniff_delimiter(header_line)
    )
    row_number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:  # e.g. a UTF-16 file cut in the middle of a unit
            raise CsvUndecodable() from exc
        except csv.Error:
            row_number += 1
            yield row_number, None
            continue
        row_number += 1
        yield row_number, cells


def _cell(cells: list[str], position: int) -> str:
    return cells[position].strip() if position < len(cells) else ""


def _texts(cells: list[str], positions: dict[str, int]) -> dict[str, str]:
    return {loc: text for loc, pos in positions.items() if (text := _cell(cells, pos))}


def _parse_row(
    cells: list[str], layout: _Layout, row: int, merchant_currency: str
) -> _Pending | RowError:
    sku_guess = _cell(cells, layout.index["sku"]) or None
    try:
        "".join(cells).encode("utf-8")
    except UnicodeEncodeError:
        return RowError(row, None, "bad_encoding", None)
    if len(cells) > layout.width and any(c.strip() for c in cells[layout.width :]):
        return RowError(row, sku_guess, "malformed_row", None)
    if any(len(c) > MAX_FIELD_BYTES for c in cells):
        return RowError(row, sku_guess, "field_too_large", None)
    stock: dict[str, int] = {}
    for code, position in layout.stock.items():
        raw = _cell(cells, position)
        if not raw:
            continue
        if not re.fullmatch(r"[+-]?\d{1,10}", raw):
            return RowError(row, sku_guess, "invalid_stock", f"stock_{code}")
        quantity = int(raw)
        if quantity < 0:
            return RowError(row, sku_guess, "negative_stock", f"stock_{code}")
        if quantity > inventory.MAX_QUANTITY:
            return RowError(row, sku_guess, "invalid_stock", f"stock_{code}")
        stock[code] = quantity
    images_raw = _cell(cells, layout.index["image_urls"]) if "image_urls" in layout.index else ""
    payload: dict[str, Any] = {
        "sku": sku_guess or "",
        # An empty cell leaves that language as it is (a re-import never erases text).
        "title": _texts(cells, layout.titles),
        "description": _texts(cells, layout.descriptions),
        "price": {
            "amount": _cell(cells, layout.index["price"]),
            "currency": (
                _cell(cells, layout.index["currency"]) if "currency" in layout.index else ""
            )
            or merchant_currency,
        },
        "weight_grams": _cell(cells, layout.index["weight_grams"]),
        "hs_code": _cell(cells, layout.index["hs_code"]),
        "origin_country": _cell(cells, layout.index["origin_country"]),
        "image_urls": [u for u in re.split(r"[|\s]+", images_raw) if u] if images_raw else None,
    }
    try:
        data = ImportRow.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]]
        column = loc[0] if loc else None
        if column in ("title", "description") and len(loc) > 1:
            column = f"{column}_{loc[1]}"
        elif column == "price" and len(loc) > 1 and loc[1] == "currency":
            column = "currency"
        return RowError(
            row,
            sku_guess,
            first["type"],
            column,
            dict(first.get("ctx") or {}),
            validation_type=first["type"],
        )
    return _Pending(row, data, stock)


@dataclass
class _Chunk:
    rows: int = 0
    pending: list[_Pending] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _chunks(
    records: Iterator[tuple[int, list[str] | None]],
    layout: _Layout,
    currency: str,
    batch_size: int,
) -> Iterator[_Chunk]:
    """Parsed and validated rows, ``batch_size`` rows at a time (good and bad alike, so that
    a file of bad rows is no more held in memory than a file of good ones)."""
    chunk, seen = _Chunk(), set[str]()
    for row_number, cells in records:
        if cells is not None and not any(c.strip() for c in cells):
            continue  # blank lines are not rows
        chunk.rows += 1
        parsed = (
            RowError(row_number, None, "malformed_row", None)
            if cells is None
            else _parse_row(cells, layout, row_number, currency)
        )
        if isinstance(parsed, RowError):
            chunk.errors.append(parsed)
        elif parsed.data.sku in seen:
            chunk.errors.append(RowError(row_number, parsed.data.sku, "duplicate_sku", "sku"))
        else:
            seen.add(parsed.data.sku)
            chunk.pending.append(parsed)
        if chunk.rows >= batch_size:
            yield chunk
            chunk, seen = _Chunk(), set()
    if chunk.rows:
        yield chunk


async def _write_batch(
    session: AsyncSession,
    merchant_id: int,
    import_id: str,
    batch: list[_Pending],
    result: ImportResult,
) -> None:
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # The import grows the table far faster than its statistics follow; a cached generic
        # plan made while the table was nearly empty scans every product of the merchant for
        # each batch (quadratic: 100,000 rows took 105 s instead of 16 s).
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    existing = {
        row.sku: row
        for row in (
            await session.execute(
                select(
                    col(Product.sku),
                    col(Product.title),
                    col(Product.description),
                    col(Product.image_urls),
                    col(Product.import_id),
                    col(Product.deleted_at),
                ).where(
                    col(Product.merchant_id) == merchant_id,
                    col(Product.sku).in_([p.data.sku for p in batch]),
                )
            )
        ).all()
    }
    if postgres:
        await session.execute(text("SET LOCAL plan_cache_mode = auto"))
    now = utcnow()
    values: list[dict[str, Any]] = []
    accepted: list[_Pending] = []
    for pending in batch:
        data = pending.data
        current = existing.get(data.sku)
        if current is not None and current.import_id == import_id:
            result.fail(RowError(pending.row, data.sku, "duplicate_sku", "sku"))
            continue
        live = current if current is not None and current.deleted_at is None else None
        title = merge_translations(live.title if live else {}, data.title)
        if not title:
            result.fail(RowError(pending.row, data.sku, "translation_required", "title"))
            continue
        description = merge_translations(live.description if live else {}, data.description)
        price = data.price.to_money()
        row: dict[str, Any] = {
            "merchant_id": merchant_id,
            "sku": data.sku,
            "title": title,
            "description": description,
            "price_minor": price.to_minor(),
            "price_currency": price.currency,
            "weight_grams": data.weight_grams,
            "hs_code": data.hs_code,
            "origin_country": data.origin_country,
            "search_text": build_search_text(data.sku, title, description),
            "import_id": import_id,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
            # No image cell keeps the stored images, like an empty title cell keeps the text.
            "image_urls": data.image_urls
            if data.image_urls is not None
            else (list(live.image_urls) if live else []),
        }
        values.append(row)
        accepted.append(pending)
        if live:
            result.updated += 1
        else:
            result.created += 1
    if not values:
        return
    table = Product.__table__  # type: ignore[attr-defined]
    stmt = dialect_insert(session, table)
    update_cols = [
        "title",
        "description",
        "price_minor",
        "price_currency",
        "weight_grams",
        "hs_code",
        "origin_country",
        "search_text",
        "import_id",
        "updated_at",
        "deleted_at",
        "image_urls",
    ]
    stmt = stmt.on_conflict_do_update(
        index_elements=["merchant_id", "sku"],
        set_={col: stmt.excluded[col] for col in update_cols},
    ).returning(table.c.id, table.c.sku)
    ids = {sku: pid for pid, sku in (await session.execute(stmt, values))}
    levels = [(ids[p.data.sku], code, qty) for p in accepted for code, qty in p.stock.items()]
    await inventory.set_stock_levels(session=session, levels=levels)


async def import_products(
    *,
    session: AsyncSession,
    merchant: Merchant,
    file: IO[bytes],
    encoding: str = "utf-8",
    batch_size: int = 1000,
) -> ImportResult:
    assert merchant.id is not None
    result = ImportResult(import_id=uuid.uuid4().hex)
    stream = _open_text(file, encoding)
    if session.get_bind().dialect.name == "postgresql":
        # Two imports of one merchant touching the same SKUs in different orders would
        # deadlock; they take turns instead (SQLite's write lock already serializes them).
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, :merchant)"),
            {"namespace": IMPORT_LOCK_NAMESPACE, "merchant": merchant.id},
        )
    warehouses = await inventory.warehouse_codes(session=session)
    records = _records(stream)
    try:
        _, header = next(records)
    except StopIteration as exc:
        raise CsvEmpty() from exc
    if header is None or not any(h.strip() for h in header):
        raise CsvEmpty()
    layout = _layout(header, warehouses, result)
    chunks = _chunks(records, layout, merchant.currency, batch_size)

    def parse_next() -> _Chunk | None:
        return next(chunks, None)

    # Parsing (CPU) runs in a worker thread one batch ahead of the database writes (I/O), so
    # the two overlap and the event loop stays free for other requests during a long import.
    ahead = asyncio.ensure_future(asyncio.to_thread(parse_next))
    try:
        while (chunk := await ahead) is not None:
            ahead = asyncio.ensure_future(asyncio.to_thread(parse_next))
            result.rows_total += chunk.rows
            for error in chunk.errors:
                result.fail(error)
            if chunk.pending:
                await _write_batch(session, merchant.id, result.import_id, chunk.pending, result)
    finally:
        if not ahead.done():
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead
    result.errors.sort(key=lambda e: e.row)
    return result
