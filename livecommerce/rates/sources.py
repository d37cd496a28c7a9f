"""Exchange rates from national-bank publications, fetched from a file or URL and stored.

The banks publish once a working day, so a scheduled refresh reads the same document many
times: storing is idempotent on (base, quote, source, as_of) and a publication only ever
adds rows (see ``ExchangeRate``). Each configured source is refreshed on its own, so a bank
that is down does not keep the others' rates from being stored.

The documents come from outside, so parsing is strict about numbers (``Decimal`` from the
text, never through a float) and refuses XML with a DOCTYPE, which is the only way to
declare the entities that entity-expansion attacks need.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.i18n.money import is_supported_currency
from livecommerce.rates.models import ExchangeRate

log = logging.getLogger(__name__)

FORMATS = ("nbk", "cbr", "cbu", "livecommerce")

NBK_SOURCE = "National Bank of Kazakhstan"
CBR_SOURCE = "Bank of Russia"
CBU_SOURCE = "Central Bank of Uzbekistan"

# A publication is dated, not timed: its rates hold from midnight in the bank's own zone.
NBK_ZONE = ZoneInfo("Asia/Almaty")
CBR_ZONE = ZoneInfo("Europe/Moscow")
CBU_ZONE = ZoneInfo("Asia/Tashkent")

# First key of the (namespace, 0) advisory lock; the catalog importer uses 0x1C5F.
STORE_LOCK_NAMESPACE = 0x2A7E
SOURCE_MAX_LENGTH = 120  # ExchangeRate.source column
# More than any bank publishes, and well inside Decimal's 28-digit context, so reading a
# rate never rounds it (ExchangeRate.rate keeps at most 40 characters).
MAX_DIGITS = 24

# Plain decimal notation only: Decimal() alone would also take "NaN", "1e3" and "1_000".
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_UNSAFE_XML = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


class RateSourceError(ValueError):
    """A rate source could not be read, or what it published is not a usable rate list."""


@dataclass(frozen=True)
class PublishedRate:
    """1 ``base`` = ``rate`` ``quote``, as ``source`` published it for ``as_of`` (aware UTC)."""

    base: str
    quote: str
    rate: Decimal
    source: str
    as_of: datetime


@dataclass
class SourceResult:
    location: str
    inserted: int
    error: str | None


Fetch = Callable[[str], Awaitable[bytes]]


# --- parsing -------------------------------------------------------------------------------


def parse_rates(data: bytes, *, fmt: str | None = None) -> list[PublishedRate]:
    """The supported-currency rates in ``data``; ``fmt`` is one of ``FORMATS`` or detected."""
    body = data.removeprefix(b"\xef\xbb\xbf").strip()
    if fmt is None:
        fmt = _detect(body)
    if fmt == "nbk":
        return _parse_nbk(_xml_root(body, "rss"))
    if fmt == "cbr":
        return _parse_cbr(_xml_root(body, "ValCurs"))
    if fmt == "cbu":
        return _parse_cbu(_json(body))
    if fmt == "livecommerce":
        return _parse_livecommerce(body)
    raise RateSourceError(f"unknown rate format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _detect(body: bytes) -> str:
    if body.startswith(b"<"):
        root = _xml_root(body)
        if root.tag == "rss":
            return "nbk"
        if root.tag == "ValCurs":
            return "cbr"
        raise RateSourceError(f"unrecognised XML rate document with root <{root.tag}>")
    if body.startswith((b"[", b"{")):
        document = _json(body)
        if isinstance(document, dict) and "rates" in document:
            return "livecommerce"
        if isinstance(document, list) and document and isinstance(document[0], dict):
            if "Ccy" in document[0]:
                return "cbu"
            if "base" in document[0]:
                return "livecommerce"
        raise RateSourceError("unrecognised JSON rate document")
    first_line = body.split(b"\n", 1)[0].decode("utf-8", "replace").lower()
    if {"base", "quote", "rate"} <= {name.strip() for name in first_line.split(",")}:
        return "livecommerce"
    raise RateSourceError("unrecognised rate document: neither XML, JSON nor rate CSV")


def _xml_root(body: bytes, expected: str | None = None) -> Element:
    if _UNSAFE_XML.search(body):
        raise RateSourceError("XML with a DOCTYPE or entity declaration is refused")
    if b"\x00" in body:
        # UTF-16/32 would hide a DOCTYPE from the byte check above; no bank publishes in them.
        raise RateSourceError("XML rate documents must use an ASCII-compatible encoding")
    builder = TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data

    # The byte check is the clear message; these make the refusal independent of encoding.
    def refuse(*_: object) -> None:
        raise RateSourceError("XML with a DOCTYPE or entity declaration is refused")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    try:
        parser.Parse(body, True)
        root = builder.close()
    except (expat.ExpatError, LookupError) as exc:  # LookupError: an unknown encoding
        raise RateSourceError(f"malformed XML rate document: {exc}") from exc
    if expected is not None and root.tag != expected:
        raise RateSourceError(f"expected an XML document with root <{expected}>, got <{root.tag}>")
    return root


def _json(body: bytes) -> Any:
    try:
        # parse_float keeps "512.34" exact instead of going through a binary float.
        return json.loads(body.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RateSourceError(f"malformed JSON rate document: {exc}") from exc


def _parse_nbk(root: Element) -> list[PublishedRate]:
    items = root.findall("./channel/item")
    if not items:
        raise RateSourceError("National Bank of Kazakhstan feed has no <item> rates")
    rates = []
    for n, item in enumerate(items, 1):
        where = f"NBK item {n}"
        base = _code(_child_text(item, "title", where))
        if not is_supported_currency(base):
            continue
        rate = _number(_child_text(item, "description", where), f"{where} ({base}) rate")
        quant = _nominal(_child_text(item, "quant", where), f"{where} ({base}) quant")
        as_of = _bank_date(_child_text(item, "pubDate", where), NBK_ZONE, where)
        rates.append(_rate(base, "KZT", rate / quant, NBK_SOURCE, as_of, where))
    return rates


def _parse_cbr(root: Element) -> list[PublishedRate]:
    as_of = _bank_date(root.get("Date") or "", CBR_ZONE, "Bank of Russia ValCurs Date")
    valutes = root.findall("./Valute")
    if not valutes:
        raise RateSourceError("Bank of Russia document has no <Valute> rates")
    rates = []
    for n, valute in enumerate(valutes, 1):
        where = f"CBR Valute {n}"
        base = _code(_child_text(valute, "CharCode", where))
        if not is_supported_currency(base):
            continue
        # The Bank of Russia writes decimals the Russian way: "92,1234".
        value = _child_text(valute, "Value", where).replace(",", ".")
        rate = _number(value, f"{where} ({base}) Value")
        nominal = _nominal(_child_text(valute, "Nominal", where), f"{where} ({base}) Nominal")
        rates.append(_rate(base, "RUB", rate / nominal, CBR_SOURCE, as_of, where))
    return rates


def _parse_cbu(document: Any) -> list[PublishedRate]:
    if not isinstance(document, list) or not document:
        raise RateSourceError("Central Bank of Uzbekistan document is not a non-empty list")
    rates = []
    for n, row in enumerate(document, 1):
        where = f"CBU entry {n}"
        if not isinstance(row, dict):
            raise RateSourceError(f"{where} is not an object")
        base = _code(_field(row, "Ccy", where))
        if not is_supported_currency(base):
            continue
        rate = _number(row.get("Rate"), f"{where} ({base}) Rate")
        nominal = _nominal(row.get("Nominal"), f"{where} ({base}) Nominal")
        as_of = _bank_date(_field(row, "Date", where), CBU_ZONE, where)
        rates.append(_rate(base, "UZS", rate / nominal, CBU_SOURCE, as_of, where))
    return rates


def _parse_livecommerce(body: bytes) -> list[PublishedRate]:
    rows: list[Any]
    if body.startswith((b"[", b"{")):
        document = _json(body)
        if isinstance(document, dict):
            document = document.get("rates")
        if not isinstance(document, list):
            raise RateSourceError("rate JSON must be a list or an object with a 'rates' list")
        rows = document
    else:
        rows = list(_csv_rows(body))
    rates = []
    for n, row in enumerate(rows, 1):
        where = f"rate row {n}"
        if not isinstance(row, dict):
            raise RateSourceError(f"{where} is not an object")
        base = _code(_field(row, "base", where))
        quote = _code(_field(row, "quote", where))
        if not (is_supported_currency(base) and is_supported_currency(quote)):
            continue
        rate = _number(row.get("rate"), f"{where} ({base}/{quote}) rate")
        source = _field(row, "source", where)
        as_of = _iso_instant(_field(row, "as_of", where), where)
        rates.append(_rate(base, quote, rate, source, as_of, where))
    if not rows:
        raise RateSourceError("rate document has no rows")
    return rates


def _csv_rows(body: bytes) -> Iterator[dict[str, str]]:
    try:
        text_body = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RateSourceError(f"rate CSV is not UTF-8: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text_body, newline=""))
    try:
        header = {name.strip().lower() for name in reader.fieldnames or ()}
        missing = {"base", "quote", "rate", "source", "as_of"} - header
        if missing:
            raise RateSourceError(f"rate CSV lacks the columns {', '.join(sorted(missing))}")
        for row in reader:
            yield {(k or "").strip().lower(): v for k, v in row.items()}
    except csv.Error as exc:
        raise RateSourceError(f"malformed rate CSV: {exc}") from exc


def _child_text(element: Element, tag: str, where: str) -> str:
    child = element.find(tag)
    if child is None or not (child.text or "").strip():
        raise RateSourceError(f"{where}: <{tag}> is missing or empty")
    return (child.text or "").strip()


def _field(row: dict[str, Any], name: str, where: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value.strip():
        raise RateSourceError(f"{where}: '{name}' is missing or not a string")
    return value.strip()


def _code(value: str) -> str:
    return value.strip().upper()


def _number(value: Any, what: str) -> Decimal:
    written: str | None = None
    if isinstance(value, Decimal):
        # A JSON number: written out in plain notation it goes through the same checks as
        # text. The range check comes first, as "1e999999999" written out would take a GB.
        if not value.is_finite() or not -MAX_DIGITS <= value.adjusted() <= MAX_DIGITS:
            raise RateSourceError(f"{what}: {value} is out of range")
        written = format(value, "f")
    elif isinstance(value, int | str) and not isinstance(value, bool):
        written = str(value).strip()
    if written is None or not _NUMBER.fullmatch(written):
        raise RateSourceError(f"{what}: {value!r} is not a number")
    if sum(c.isdigit() for c in written) > MAX_DIGITS:
        raise RateSourceError(f"{what}: {value!r} has more than {MAX_DIGITS} digits")
    number = Decimal(written)
    if number <= 0:
        raise RateSourceError(f"{what}: {value!r} must be a positive number")
    return number


def _nominal(value: Any, what: str) -> Decimal:
    nominal = _number(value, what)
    if nominal != nominal.to_integral_value():
        raise RateSourceError(f"{what}: {value!r} is not a whole number of units")
    return nominal


def _bank_date(value: str, zone: ZoneInfo, where: str) -> datetime:
    try:
        day = datetime.strptime(value.strip(), "%d.%m.%Y")
    except ValueError as exc:
        raise RateSourceError(f"{where}: date {value!r} is not DD.MM.YYYY") from exc
    return day.replace(tzinfo=zone).astimezone(UTC)


def _iso_instant(value: str, where: str) -> datetime:
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise RateSourceError(f"{where}: as_of {value!r} is not ISO 8601") from exc
    if instant.tzinfo is None:
        raise RateSourceError(f"{where}: as_of {value!r} has no UTC offset")
    return instant.astimezone(UTC)


def _rate(
    base: str, quote: str, rate: Decimal, source: str, as_of: datetime, where: str
) -> PublishedRate:
    if base == quote:
        raise RateSourceError(f"{where}: {base} is quoted in itself")
    if len(source) > SOURCE_MAX_LENGTH:
        raise RateSourceError(f"{where}: source is longer than {SOURCE_MAX_LENGTH} characters")
    return PublishedRate(base, quote, rate, source, as_of)


# --- fetching ------------------------------------------------------------------------------


async def fetch_source(
    location: str,
    *,
    # Not only a deadline around the call (what ASYNC109 suggests): httpx also needs it for
    # its connect and per-read limits, so the Celery task passes one number down.
    timeout: float = 10.0,  # noqa: ASYNC109
    max_bytes: int = 5 * 1024 * 1024,
) -> bytes:
    """The document at ``location``: an http(s) URL, a ``file://`` URL or a local path."""
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return await _fetch_http(location, seconds=timeout, max_bytes=max_bytes)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise RateSourceError(f"{location}: file URLs on other hosts are not supported")
        path = Path(url2pathname(parts.path))
    elif len(scheme) <= 1:  # no scheme, or a Windows drive letter
        path = Path(location)
    else:
        raise RateSourceError(f"{location}: unsupported scheme {scheme!r}")
    return await asyncio.to_thread(_read_file, path, max_bytes)


async def _fetch_http(url: str, *, seconds: float, max_bytes: int) -> bytes:
    try:
        # httpx's timeout bounds each read; the outer one bounds a server that drips bytes.
        async with (
            asyncio.timeout(seconds),
            httpx.AsyncClient(timeout=seconds, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise RateSourceError(f"{url}: HTTP {response.status_code}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise RateSourceError(f"{url}: response of {declared} bytes exceeds {max_bytes}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise RateSourceError(f"{url}: response exceeds {max_bytes} bytes")
            return bytes(body)
    except TimeoutError as exc:
        raise RateSourceError(f"{url}: no complete response within {seconds} s") from exc
    except httpx.HTTPError as exc:
        raise RateSourceError(f"{url}: {type(exc).__name__}: {exc}") from exc


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise RateSourceError(f"{path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise RateSourceError(f"{path}: file exceeds {max_bytes} bytes")
    return data


# --- storing -------------------------------------------------------------------------------


async def store_rates(*, session: AsyncSession, rates: Iterable[PublishedRate]) -> int:
    """Insert the rates not stored yet; how many were inserted. The caller commits."""
    wanted: dict[tuple[str, str, str, datetime], PublishedRate] = {}
    for rate in rates:
        wanted.setdefault((rate.base, rate.quote, rate.source, rate.as_of), rate)
    if not wanted:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        # Without a unique key, two refreshes checking at once would both insert; they take
        # turns instead (SQLite's write lock, taken at BEGIN, already serializes them).
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:namespace, 0)"),
            {"namespace": STORE_LOCK_NAMESPACE},
        )
    sources = {key[2] for key in wanted}
    instants = {key[3] for key in wanted}
    stored = await session.execute(
        select(
            col(ExchangeRate.base),
            col(ExchangeRate.quote),
            col(ExchangeRate.source),
            col(ExchangeRate.as_of),
        ).where(col(ExchangeRate.source).in_(sources), col(ExchangeRate.as_of).in_(instants))
    )
    for base, quote, source, as_of in stored:
        wanted.pop((base, quote, source, as_of), None)
    session.add_all(
        ExchangeRate(base=r.base, quote=r.quote, rate=r.rate, source=r.source, as_of=r.as_of)
        for r in wanted.values()
    )
    await session.flush()
    return len(wanted)


async def refresh_rates(
    *, session: AsyncSession, locations: Sequence[str], fetch: Fetch = fetch_source
) -> list[SourceResult]:
    """Fetch, parse and store every location; one failing source is reported, not fatal."""
    results = []
    for location in locations:
        try:
            rates = parse_rates(await fetch(location))
            # A savepoint per source: a failed insert undoes only that source's rows.
            async with session.begin_nested():
                inserted = await store_rates(session=session, rates=rates)
        except RateSourceError as exc:
            log.warning("exchange rate source %s failed: %s", location, exc)
            results.append(SourceResult(location, 0, str(exc)))
        except Exception as exc:
            # A scheduled refresh should still store the sources that work; the traceback
            # goes to the log for whatever bug or outage this was.
            log.exception("exchange rate source %s failed unexpectedly", location)
            results.append(SourceResult(location, 0, f"{type(exc).__name__}: {exc}"))
        else:
            results.append(SourceResult(location, inserted, None))
    return results
