"""Rate sources: national-bank documents parsed exactly, fetched over HTTP, stored once."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from livecommerce.db import session_factory, session_scope
from livecommerce.i18n.money import Money
from livecommerce.rates.models import ExchangeRate
from livecommerce.rates.service import load_rate_book
from livecommerce.rates.sources import (
    PublishedRate,
    RateSourceError,
    fetch_source,
    parse_rates,
    refresh_rates,
    store_rates,
)
from tests.fixtures.database import TestDatabase

DATA = Path(__file__).with_name("data")
NBK = DATA / "nbk_rates_all.xml"
CBR = DATA / "cbr_XML_daily.xml"
CBU = DATA / "cbu_json.json"
OWN_JSON = DATA / "livecommerce_rates.json"
OWN_CSV = DATA / "livecommerce_rates.csv"

# 23.11.2026 at midnight in Almaty and Tashkent (UTC+5) and in Moscow (UTC+3).
MIDNIGHT_UTC5 = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)
MIDNIGHT_MOSCOW = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)


def triples(rates: list[PublishedRate]) -> list[tuple[str, str, Decimal]]:
    return [(r.base, r.quote, r.rate) for r in rates]


# --- parsing -------------------------------------------------------------------------------


def test_nbk_feed_gives_tenge_per_unit_for_supported_currencies() -> None:
    """The NBK feed yields KZT per one unit (quant divided out), unsupported codes dropped."""
    rates = parse_rates(NBK.read_bytes())
    assert triples(rates) == [
        ("EUR", "KZT", Decimal("593.17")),
        ("CNY", "KZT", Decimal("71.85")),
        ("KGS", "KZT", Decimal("5.86")),
        ("RUB", "KZT", Decimal("6.31")),
        ("USD", "KZT", Decimal("512.34")),
        ("UZS", "KZT", Decimal("0.0405")),
    ]
    assert {r.source for r in rates} == {"National Bank of Kazakhstan"}
    assert {r.as_of for r in rates} == {MIDNIGHT_UTC5}
    assert all(r.as_of.utcoffset() == UTC.utcoffset(None) for r in rates)


def test_cbr_daily_is_read_as_windows_1251_with_comma_decimals_and_nominals() -> None:
    """The Bank of Russia file (cp1251, "92,1234", nominal 10/100/10000) gives RUB per unit."""
    data = CBR.read_bytes()
    assert "Доллар США".encode("windows-1251") in data  # the sample really is cp1251
    rates = parse_rates(data)
    assert triples(rates) == [
        ("USD", "RUB", Decimal("92.1234")),
        ("EUR", "RUB", Decimal("106.6610")),
        ("KZT", "RUB", Decimal("0.181234")),
        ("KGS", "RUB", Decimal("1.0537")),
        ("CNY", "RUB", Decimal("12.7455")),
        ("UZS", "RUB", Decimal("0.007281")),
    ]
    assert {r.source for r in rates} == {"Bank of Russia"}
    assert {r.as_of for r in rates} == {MIDNIGHT_MOSCOW}


def test_cbu_json_gives_som_per_unit() -> None:
    """The Central Bank of Uzbekistan list gives UZS per unit, dated midnight in Tashkent."""
    rates = parse_rates(CBU.read_bytes())
    assert triples(rates) == [
        ("USD", "UZS", Decimal("12650.55")),
        ("EUR", "UZS", Decimal("14645.10")),
        ("RUB", "UZS", Decimal("137.31")),
        ("KZT", "UZS", Decimal("24.69")),
        ("KGS", "UZS", Decimal("144.67")),
        ("CNY", "UZS", Decimal("1750.21")),
    ]
    assert {r.source for r in rates} == {"Central Bank of Uzbekistan"}
    assert {r.as_of for r in rates} == {MIDNIGHT_UTC5}


def test_cbu_nominal_is_divided_out() -> None:
    """A CBU entry quoted per 10 units is stored per one unit."""
    data = b'[{"Ccy":"KZT","Nominal":"10","Rate":"246.90","Date":"23.11.2026"}]'
    assert triples(parse_rates(data)) == [("KZT", "UZS", Decimal("24.69"))]


def test_own_json_keeps_exact_numbers_and_offsets() -> None:
    """The import JSON keeps JSON numbers exact and turns offsets into UTC instants."""
    rates = parse_rates(OWN_JSON.read_bytes())
    assert rates == [
        PublishedRate(
            "EUR",
            "KZT",
            Decimal("605.10"),
            "Treasury desk",
            datetime(2026, 11, 23, 4, 30, tzinfo=UTC),
        ),
        PublishedRate(
            "CNY",
            "KZT",
            Decimal("71.9"),
            "Treasury desk",
            datetime(2026, 11, 23, 4, 30, tzinfo=UTC),
        ),
    ]
    assert str(rates[1].rate) == "71.9"  # not 71.900000000000005684... from a float


def test_own_csv_upper_cases_codes_and_skips_unsupported() -> None:
    """The import CSV (CRLF) is read like `livecommerce rates import`, codes upper-cased."""
    assert parse_rates(OWN_CSV.read_bytes()) == [
        PublishedRate(
            "EUR",
            "UZS",
            Decimal("14650.00"),
            "Treasury desk",
            datetime(2026, 11, 23, 5, tzinfo=UTC),
        ),
        PublishedRate(
            "USD", "KGS", Decimal("87.45"), "Treasury desk", datetime(2026, 11, 23, 4, tzinfo=UTC)
        ),
    ]


def own_json_rate(rate: bytes) -> bytes:
    return (
        b'[{"base":"KZT","quote":"EUR","rate":%s,"source":"x","as_of":"2026-11-23T00:00Z"}]' % rate
    )


def test_own_json_numbers_are_exact_in_any_notation() -> None:
    """JSON numbers in exponent notation are read exactly; absurd magnitudes are refused."""
    assert parse_rates(own_json_rate(b"1.66e-8"))[0].rate == Decimal("0.0000000166")
    assert parse_rates(own_json_rate(b"2E3"))[0].rate == Decimal(2000)
    with pytest.raises(RateSourceError, match="out of range"):
        parse_rates(own_json_rate(b"7e999999999"))
    with pytest.raises(RateSourceError, match="not a number"):
        parse_rates(own_json_rate(b"NaN"))
    with pytest.raises(RateSourceError, match="not a number"):
        parse_rates(own_json_rate(b"true"))


def test_own_format_accepts_a_bare_list() -> None:
    """A bare JSON list of rate objects is the import format too."""
    data = b'[{"base":"USD","quote":"CNY","rate":"7.1","source":"x","as_of":"2026-11-23T00:00Z"}]'
    assert triples(parse_rates(data)) == [("USD", "CNY", Decimal("7.1"))]


@pytest.mark.parametrize(
    ("path", "fmt", "source"),
    [
        (NBK, "nbk", "National Bank of Kazakhstan"),
        (CBR, "cbr", "Bank of Russia"),
        (CBU, "cbu", "Central Bank of Uzbekistan"),
        (OWN_JSON, "livecommerce", "Treasury desk"),
        (OWN_CSV, "livecommerce", "Treasury desk"),
    ],
)
def test_detection_picks_the_format(path: Path, fmt: str, source: str) -> None:
    """Without fmt the document's shape picks the same parser as naming the format."""
    data = path.read_bytes()
    detected = parse_rates(data)
    assert detected
    assert detected == parse_rates(data, fmt=fmt)
    assert {r.source for r in detected} == {source}


def test_detection_ignores_a_byte_order_mark() -> None:
    """A UTF-8 BOM in front of a document does not hide its format."""
    assert parse_rates(b"\xef\xbb\xbf" + CBU.read_bytes()) == parse_rates(CBU.read_bytes())


def test_naming_the_wrong_format_is_an_error() -> None:
    """A Bank of Russia file named as the NBK format is refused, not misread."""
    with pytest.raises(RateSourceError, match="<rss>"):
        parse_rates(CBR.read_bytes(), fmt="nbk")
    with pytest.raises(RateSourceError, match="unknown rate format"):
        parse_rates(CBR.read_bytes(), fmt="ecb")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rss><channel><item><title>USD</title><pubDate>23.11.2026</pubDate>
<description>&lol3;</description><quant>1</quant></item></channel></rss>"""


def test_doctype_and_entities_are_refused() -> None:
    """XML declaring a DOCTYPE or entities is refused before any expansion."""
    with pytest.raises(RateSourceError, match="DOCTYPE"):
        parse_rates(BILLION_LAUGHS)
    with pytest.raises(RateSourceError, match="DOCTYPE"):
        parse_rates(BILLION_LAUGHS, fmt="nbk")
    with pytest.raises(RateSourceError, match="DOCTYPE"):
        parse_rates(b'<!doctype ValCurs SYSTEM "file:///etc/passwd"><ValCurs/>')


def test_doctype_hidden_in_utf16_is_refused() -> None:
    """A DOCTYPE the byte check cannot see (UTF-16) is refused all the same."""
    document = BILLION_LAUGHS.decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    with pytest.raises(RateSourceError):
        parse_rates(document.encode("utf-16"), fmt="nbk")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"<html><body>503 Service Unavailable</body></html>",
        b"<rss><channel><item><title>USD</title>",
        b"<rss><channel></channel></rss>",
        b'<ValCurs Date="23.11.2026" name="Foreign Currency Market"></ValCurs>',
        b'{"error": "rate limit"}',
        b"[]",
        b"{not json",
        b"name,price\nwidget,3",
    ],
)
def test_garbage_is_a_rate_source_error(data: bytes) -> None:
    """Anything that is not a rate document raises RateSourceError, never returns rates."""
    with pytest.raises(RateSourceError):
        parse_rates(data)


NBK_ROW = (
    b"<rss><channel><item><title>%s</title><pubDate>%s</pubDate>"
    b"<description>%s</description><quant>%s</quant></item></channel></rss>"
)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((b"USD", b"23.11.2026", b"0", b"1"), "positive"),
        ((b"USD", b"23.11.2026", b"-512.34", b"1"), "positive"),
        ((b"USD", b"23.11.2026", b"NaN", b"1"), "not a number"),
        ((b"USD", b"23.11.2026", b"512,34", b"1"), "not a number"),
        ((b"USD", b"23.11.2026", b"1e3", b"1"), "not a number"),
        ((b"USD", b"23.11.2026", b"1_000", b"1"), "not a number"),
        ((b"USD", b"23.11.2026", b"512." + b"1" * 30, b"1"), "more than 24 digits"),
        ((b"USD", b"23.11.2026", b"512.34", b"0"), "positive"),
        ((b"USD", b"23.11.2026", b"512.34", b"1.5"), "whole number"),
        ((b"USD", b"2026-11-23", b"512.34", b"1"), "DD.MM.YYYY"),
        ((b"KZT", b"23.11.2026", b"1", b"1"), "quoted in itself"),
    ],
)
def test_a_bad_number_or_date_in_a_kept_row_is_an_error(
    row: tuple[bytes, ...], message: str
) -> None:
    """A supported currency with an unusable rate, nominal or date fails the document."""
    with pytest.raises(RateSourceError, match=message):
        parse_rates(NBK_ROW % row)


def test_unsupported_rows_are_skipped_even_when_broken() -> None:
    """A currency we do not sell in is skipped without looking at its numbers."""
    assert parse_rates(NBK_ROW % (b"XDR", b"yesterday", b"n/a", b"0"), fmt="nbk") == []


def test_own_format_needs_an_offset_and_a_source() -> None:
    """An import row with a naive as_of or without a source is refused."""
    naive = b'[{"base":"USD","quote":"KZT","rate":"1","source":"x","as_of":"2026-11-23T00:00"}]'
    with pytest.raises(RateSourceError, match="UTC offset"):
        parse_rates(naive)
    nameless = b"base,quote,rate,source,as_of\nUSD,KZT,512,,2026-11-23T00:00Z\n"
    with pytest.raises(RateSourceError, match="source"):
        parse_rates(nameless)
    with pytest.raises(RateSourceError, match="source"):
        parse_rates(b"base,quote,rate,as_of\nUSD,KZT,512,2026-11-23T00:00Z\n", fmt="livecommerce")


# --- fetching ------------------------------------------------------------------------------

BIG_BODY = 100 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    sent_unbounded = 0
    unbounded_done = threading.Event()

    def do_GET(self) -> None:
        try:
            if self.path == "/nbk.xml":
                self._send(NBK.read_bytes(), content_type="application/rss+xml")
            elif self.path == "/declared-big":
                self._send(b"x" * 20_000)
            elif self.path == "/undeclared-big":
                self._unbounded()
            elif self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/nbk.xml")
                self.end_headers()
            elif self.path == "/drip":
                self._drip()
            else:
                self.send_error(404)
        except OSError:
            pass  # the client hung up, which is what several tests want

    def _send(self, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _unbounded(self) -> None:
        # HTTP/1.0 without Content-Length: the body ends when the connection closes.
        self.send_response(200)
        self.end_headers()
        chunk = b"y" * 65536
        try:
            while type(self).sent_unbounded < BIG_BODY:
                self.wfile.write(chunk)
                type(self).sent_unbounded += len(chunk)
        finally:
            type(self).unbounded_done.set()

    def _drip(self) -> None:
        self.send_response(200)
        self.end_headers()
        for _ in range(50):
            self.wfile.write(b"<")
            self.wfile.flush()
            time.sleep(0.1)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_fetch_reads_a_document_over_http(http_base: str) -> None:
    """A URL's body arrives byte for byte, redirects followed."""
    assert await fetch_source(f"{http_base}/nbk.xml") == NBK.read_bytes()
    assert await fetch_source(f"{http_base}/moved") == NBK.read_bytes()


async def test_fetch_refuses_a_declared_oversized_response(http_base: str) -> None:
    """A Content-Length over max_bytes is refused."""
    with pytest.raises(RateSourceError, match="exceeds 10000"):
        await fetch_source(f"{http_base}/declared-big", max_bytes=10_000)


async def test_fetch_stops_reading_an_undeclared_oversized_response(http_base: str) -> None:
    """A body without Content-Length is cut off once it passes max_bytes, not read to the end."""
    with pytest.raises(RateSourceError, match="exceeds 10000"):
        await fetch_source(f"{http_base}/undeclared-big", max_bytes=10_000)
    assert _Handler.unbounded_done.wait(10)
    assert _Handler.sent_unbounded < BIG_BODY


async def test_fetch_reports_http_errors(http_base: str) -> None:
    """A 404 is a RateSourceError naming the status."""
    with pytest.raises(RateSourceError, match="HTTP 404"):
        await fetch_source(f"{http_base}/missing.xml")


async def test_fetch_gives_up_on_a_server_that_drips(http_base: str) -> None:
    """The timeout bounds the whole response, even when every read gets a byte in time."""
    started = time.monotonic()
    with pytest.raises(RateSourceError, match=r"within 0\.5 s"):
        await fetch_source(f"{http_base}/drip", timeout=0.5)
    assert time.monotonic() - started < 3


async def test_fetch_reports_a_refused_connection() -> None:
    """Nobody listening on the port is a RateSourceError."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RateSourceError, match="ConnectError"):
        await fetch_source(f"http://127.0.0.1:{port}/rates.xml", timeout=2)


async def test_fetch_reads_paths_and_file_urls(tmp_path: Path) -> None:
    """Plain paths and file:// URLs are read from disk; a missing or big file is an error."""
    assert await fetch_source(str(CBR)) == CBR.read_bytes()
    assert await fetch_source(CBR.resolve().as_uri()) == CBR.read_bytes()
    with pytest.raises(RateSourceError, match="No such file"):
        await fetch_source(str(tmp_path / "absent.xml"))
    big = tmp_path / "big.xml"
    big.write_bytes(b"<" * 2048)
    with pytest.raises(RateSourceError, match="exceeds 1024"):
        await fetch_source(str(big), max_bytes=1024)
    with pytest.raises(RateSourceError, match="unsupported scheme"):
        await fetch_source("ftp://example.com/rates.xml")


# --- storing (SQLite and PostgreSQL) -------------------------------------------------------


@pytest.fixture
async def sessions(database: TestDatabase) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    try:
        yield session_factory(database.engine)
    finally:
        await database.reset()


async def count_rows(sessions: async_sessionmaker[AsyncSession], source: str) -> int:
    async with session_scope(sessions, read_only=True) as session:
        total = await session.scalar(
            select(func.count()).select_from(ExchangeRate).where(col(ExchangeRate.source) == source)
        )
    return int(total or 0)


async def test_storing_twice_inserts_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The same publication stored again, in a later transaction, adds no rows."""
    rates = parse_rates(CBR.read_bytes())
    async with session_scope(sessions) as session:
        assert await store_rates(session=session, rates=rates) == 6
    async with session_scope(sessions) as session:
        assert await store_rates(session=session, rates=rates) == 0
        assert await store_rates(session=session, rates=rates + rates) == 0
    assert await count_rows(sessions, "Bank of Russia") == 6
    async with session_scope(sessions, read_only=True) as session:
        stored = (
            await session.scalars(
                select(ExchangeRate).where(col(ExchangeRate.source) == "Bank of Russia")
            )
        ).all()
    assert sorted((r.base, r.rate, r.as_of) for r in stored) == sorted(
        (r.base, r.rate, r.as_of) for r in rates
    )


async def test_a_new_publication_is_stored_beside_the_old(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The next day's document adds rows; only identical (pair, source, as_of) are skipped."""
    today = parse_rates(NBK.read_bytes())
    tomorrow = parse_rates(NBK.read_bytes().replace(b"23.11.2026", b"24.11.2026"))
    async with session_scope(sessions) as session:
        assert await store_rates(session=session, rates=today) == 6
        assert await store_rates(session=session, rates=today + tomorrow) == 6
    assert await count_rows(sessions, "National Bank of Kazakhstan") == 12


async def test_store_leaves_the_commit_to_the_caller(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Rows stored in a transaction that rolls back are gone."""
    async with sessions() as session:
        assert await store_rates(session=session, rates=parse_rates(CBU.read_bytes())) == 6
        await session.rollback()
    assert await count_rows(sessions, "Central Bank of Uzbekistan") == 0


async def test_refresh_reports_a_failing_source_and_stores_the_others(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """A missing and a garbled source are reported; the good ones are stored, once."""
    garbled = tmp_path / "garbled.xml"
    garbled.write_bytes(NBK.read_bytes().replace(b"512.34", b"512.3.4"))
    shutil.copy(CBU, tmp_path / "cbu.json")
    locations = [
        str(NBK),
        str(tmp_path / "absent.xml"),
        str(garbled),
        (tmp_path / "cbu.json").as_uri(),
    ]

    async with session_scope(sessions) as session:
        first = await refresh_rates(session=session, locations=locations)
    assert [(r.location, r.inserted) for r in first] == [
        (loc, 6 if i in (0, 3) else 0) for i, loc in enumerate(locations)
    ]
    assert first[0].error is None and first[3].error is None
    assert first[1].error is not None and "absent.xml" in first[1].error
    assert first[2].error is not None and "'512.3.4' is not a number" in first[2].error
    assert await count_rows(sessions, "National Bank of Kazakhstan") == 6
    assert await count_rows(sessions, "Central Bank of Uzbekistan") == 6

    async with session_scope(sessions) as session:
        second = await refresh_rates(session=session, locations=locations)
    assert [r.inserted for r in second] == [0, 0, 0, 0]
    assert [r.error is None for r in second] == [True, False, False, True]


async def test_an_unexpected_fetch_error_does_not_stop_the_others(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A fetcher raising something other than RateSourceError is reported like any failure."""

    async def fetch(location: str) -> bytes:
        return {"nbk": NBK, "cbr": CBR}[location].read_bytes()

    async def flaky(location: str) -> bytes:
        if location == "broken":
            raise ConnectionResetError("peer reset")
        return await fetch(location)

    async with session_scope(sessions) as session:
        results = await refresh_rates(
            session=session, locations=["nbk", "broken", "cbr"], fetch=flaky
        )
    assert [(r.inserted, r.error) for r in results] == [
        (6, None),
        (0, "ConnectionResetError: peer reset"),
        (6, None),
    ]
    assert await count_rows(sessions, "National Bank of Kazakhstan") == 6
    assert await count_rows(sessions, "Bank of Russia") == 6


async def test_refreshed_rates_drive_conversion(
    sessions: async_sessionmaker[AsyncSession], http_base: str
) -> None:
    """After a refresh over HTTP, the rate book converts USD to KZT with the NBK rate."""
    async with session_scope(sessions, read_only=True) as session:
        before, _ = (await load_rate_book(session)).convert(Money(Decimal(100), "USD"), "KZT")
    assert before.amount != Decimal("51234.00")  # the seed only has EUR crosses

    async with session_scope(sessions) as session:
        results = await refresh_rates(session=session, locations=[f"{http_base}/nbk.xml"])
    assert [(r.inserted, r.error) for r in results] == [(6, None)]

    async with session_scope(sessions, read_only=True) as session:
        book = await load_rate_book(session)
    after, used = book.convert(Money(Decimal(100), "USD"), "KZT")
    assert after == Money(Decimal("51234.00"), "KZT")
    assert [(u.base, u.quote, u.rate, u.source, u.as_of) for u in used] == [
        ("USD", "KZT", Decimal("512.34"), "National Bank of Kazakhstan", MIDNIGHT_UTC5)
    ]
    som, used = book.convert(Money(Decimal(1000), "UZS"), "KZT")
    assert som == Money(Decimal("40.5000"), "KZT")
    assert used[0].source == "National Bank of Kazakhstan"
