"""Flash-sale benchmark: N buyers race for one hot SKU, beside a naive server and the DB ceiling.

Usage (from the repository root)::

    .venv/bin/python bench/flash_sale.py [--buyers 200,1000,10000] [--rounds 3]
                                         [--mode sale|stock] [--variants a,b,d,e,f]
                                         [--stock-share 0.25] [--client raw|httpx]
                                         [--admin-dsn postgresql://postgres@127.0.0.1:5432/test]
                                         [--database bench_flash] [--keep-database]
                                         [--redis-url redis://127.0.0.1:6379/10]

``--mode sale`` (the default) races for a flash sale in a live stream: the sale has the units
(one per buyer at most), the product has stock for every buyer, and each order names the
stream and the sale. ``--mode stock`` races for the plain stock of one SKU instead.

A scratch PostgreSQL database (``--database``, default ``bench_flash``) is created through
``--admin-dsn`` (dropped first when it exists, and dropped again at the end unless
``--keep-database``). For every buyer count N in ``--buyers`` and every round, the hot SKU gets
``units = N * --stock-share`` units (12, 50 and 250 by default), so that the race really sells
out, and then N buyers, one request each, are released together against three variants:

- ``(a) naive``: a tiny FastAPI app (this file, ``--naive-server``; uvicorn in its own process,
  asyncpg pool of 10-30 connections) whose ``POST /orders`` reads the quantity, and if it is
  positive writes back ``read - 1`` and inserts the order, as separate autocommit statements:
  the classic read-modify-write race. Its table has no ``CHECK``; it oversells.
- ``(b) ceiling``: no HTTP at all. An asyncpg pool of 30 connections (the server's 10 + 20
  overflow) in this process; each buyer is one transaction ``UPDATE ... SET quantity =
  quantity - 1 WHERE ... AND quantity >= 1 RETURNING quantity`` plus, when a row came back,
  ``INSERT`` of the order. Nothing the service does on top can be faster.
- ``(d) livecommerce``: the application as ``livecommerce serve`` runs it (one process,
  SQLAlchemy pool of 10 + 20 overflow), ``POST /api/v1/orders`` with a bearer token per buyer;
  a fresh product (and stream and sale) per round, set up through the API.
- ``(e) livecommerce, SQLite``: the embedded default, one process, on a SQLite file.
- ``(f) livecommerce x2, Redis``: ``serve --workers 2`` on PostgreSQL, rooms, the
  admission gate and the job queue in Redis (``--redis-url``, a database of its own; nothing
  is flushed, so the fulfilment jobs no worker consumes stay queued there).
  Buyers are inserted straight into ``users`` and their tokens minted in-process (registering
  1,000 accounts through the API would spend minutes in Argon2).

Each HTTP variant gets a warm-up first (``--warmup`` orders of a separate, well-stocked product,
so that code paths and database pools are warm), then one connection per buyer is opened and
primed with ``GET /healthz`` (buyers already watching the page), and only then are all N orders
released at once (``asyncio.gather`` behind one gate). ``--client raw`` (default) writes
pre-encoded HTTP/1.1 requests on plain asyncio streams and reads back status and body;
``--client httpx`` sends them through one ``httpx.AsyncClient`` with a pool of N connections.
The default is the raw client because httpcore's pool rescans every connection for every
queued request (encode/httpcore#1035): on 2 vCPUs the httpx client spent about 20 ms of CPU
per request with 200 buyers (4 s per race), more than the servers it measures, and stole it
from them. The client's CPU seconds are printed with every figure either way.

Per race it records each request's latency (send to full response, so client-side queueing
is included), the wall time from the first send to the last response, orders/s (201s / wall),
requests/s (N / wall: orders are capped by the units, so this is the throughput compared),
p50 / p99 latency over all N requests, and the oversell (orders - units). The database is then
read back: the stock left must be >= 0 and units sold (order lines, or order rows) must equal
the orders answered and units - stock left ("DB ok"). Statuses other than 201 and 409
``out_of_stock`` count as other errors, with a few samples printed. Client and server CPU
seconds (``getrusage`` and ``/proc/<pid>/stat``) are shown because the client, both servers
and PostgreSQL share this machine's cores. Figures are medians over ``--rounds`` rounds; the
oversell column lists every round.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import json
import math
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
THIS_FILE = str(Path(__file__).resolve())
SECRET = "flash-sale-benchmark-secret-key-not-for-production"
DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTUP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 120.0
POOL_SIZE = 30  # livecommerce: pool_size 10 + max_overflow 20
WAREHOUSE = "KZALA"
WARM_STOCK = 1_000_000
MERCHANT_EMAIL = "merchant@flash.bench"
MERCHANT_PASSWORD = "flash-bench-password"
SHIP_TO = {
    "country": "KZ",
    "city": "Almaty",
    "postal_code": "050000",
    "address_line1": "Abay Ave 10",
    "recipient_name": "Test Buyer",
    "phone": "+7 701 123 45 67",
}
VARIANTS = {
    "a": "(a) naive",
    "b": "(b) ceiling",
    "d": "(d) livecommerce",
    "e": "(e) livecommerce, SQLite",
    "f": "(f) livecommerce x2, Redis",
}
OURS = ("d", "e", "f")

NAIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS naive_stock (product_id int PRIMARY KEY, quantity int NOT NULL);
CREATE TABLE IF NOT EXISTS naive_orders (
    id serial PRIMARY KEY, product_id int, buyer int, created_at timestamptz DEFAULT now()
);
"""
CEILING_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_ceiling_stock (
    product_id int PRIMARY KEY, quantity int NOT NULL CHECK (quantity >= 0)
);
CREATE TABLE IF NOT EXISTS bench_ceiling_orders (
    id serial PRIMARY KEY, product_id int NOT NULL, buyer int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""
CEILING_TAKE = (
    "UPDATE bench_ceiling_stock SET quantity = quantity - 1"
    " WHERE product_id = $1 AND quantity >= 1 RETURNING quantity"
)
CEILING_ORDER = "INSERT INTO bench_ceiling_orders (product_id, buyer) VALUES ($1, $2)"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- (a) the naive server, run as ``flash_sale.py --naive-server`` -----------------------------


class NaiveOrder(BaseModel):
    product_id: int
    buyer: int


def run_naive_server(port: int, dsn: str) -> None:
    """Read, then write back ``read - 1``: two buyers who read 5 both write 4 (and both buy)."""
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        nonlocal pool
        # Idle connections close after 2 s (the benchmark pauses longer between races), so
        # that the three variants' pools never hold 90 connections at once.
        pool = await asyncpg.create_pool(
            dsn, min_size=0, max_size=POOL_SIZE, max_inactive_connection_lifetime=2
        )
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/orders")
    async def place(order: NaiveOrder) -> JSONResponse:
        assert pool is not None
        async with pool.acquire() as conn:
            quantity = await conn.fetchval(
                "SELECT quantity FROM naive_stock WHERE product_id = $1", order.product_id
            )
            if quantity is None or quantity <= 0:
                return JSONResponse({"error": {"code": "out_of_stock"}}, status_code=409)
            await asyncio.sleep(0)
            await conn.execute(
                "UPDATE naive_stock SET quantity = $2 WHERE product_id = $1",
                order.product_id,
                quantity - 1,
            )
            order_id = await conn.fetchval(
                "INSERT INTO naive_orders (product_id, buyer) VALUES ($1, $2) RETURNING id",
                order.product_id,
                order.buyer,
            )
        return JSONResponse({"id": order_id}, status_code=201)

    # The same idle keep-alive as livecommerce serve: buyers hold their connection open.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=30)


# --- Processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    env.update(
        LIVECOMMERCE_DATABASE_URL=database_url,
        LIVECOMMERCE_DATA_DIR=str(data_dir),
        LIVECOMMERCE_SECRET_KEY=SECRET,
        LIVECOMMERCE_LOG_LEVEL="warning",
        # Fulfilment jobs wait in the queue: the race measures the API alone.
        LIVECOMMERCE_EMBEDDED_WORKER="false",
    )
    return env


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "livecommerce.cli", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed ({done.returncode}):\n{done.stderr[-2000:]}")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its worker processes (``--workers``)."""
        total = 0.0
        for pid in [self.proc.pid, *children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def spawn(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Server:
    port = free_port()
    log_path = workdir / f"{name}-{port}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "--port", str(port)], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    return Server(name, proc, port, log_path)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.proc.returncode}:\n{tail(server.log_path)}"
                )
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} not healthy after {STARTUP_TIMEOUT_S:.0f} s")


def server_problems(server: Server) -> list[str]:
    """Lines of the server's log that tell of errors (uvicorn logs at warning and above)."""
    try:
        text = server.log_path.read_text(errors="replace")
    except OSError:
        return []
    return [
        line
        for line in text.splitlines()
        if any(word in line for word in ("Traceback", "ERROR", "Error", "Exception", "WARNING"))
    ]


# --- Database ----------------------------------------------------------------------------------


def database_dsn(admin_dsn: str, name: str) -> str:
    base, _, _ = admin_dsn.rpartition("/")
    return f"{base}/{name}"


async def drop_database(admin: asyncpg.Connection, name: str) -> None:
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


async def create_database(admin_dsn: str, name: str) -> str:
    """Create the scratch database afresh; return PostgreSQL's ``version()``."""
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        version = str(await admin.fetchval("SELECT version()"))
        await drop_database(admin, name)
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return version


async def remove_database(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await drop_database(admin, name)
    finally:
        await admin.close()


async def insert_buyers(conn: asyncpg.Connection, count: int) -> list[int]:
    """``count`` viewer accounts, straight into ``users`` (no Argon2); their ids in order."""
    emails = [f"buyer{n:05d}@flash.bench" for n in range(count)]
    rows = await conn.fetch(
        """
        INSERT INTO users (email, password_hash, display_name, role, locale, currency,
                           is_active, created_at)
        SELECT e, 'not-a-password-hash', 'Buyer ' || n, 'viewer', 'ru', 'RUB', true, now()
        FROM unnest($1::text[]) WITH ORDINALITY AS u(e, n)
        RETURNING id, email
        """,
        emails,
    )
    by_email = {row["email"]: int(row["id"]) for row in rows}
    return [by_email[e] for e in emails]


def mint_tokens(user_ids: Sequence[int]) -> list[str]:
    from livecommerce.accounts.security import create_token

    return [
        create_token(secret=SECRET, subject=str(uid), role="viewer", lifetime=timedelta(hours=12))[
            0
        ]
        for uid in user_ids
    ]


# --- Clients -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    """One buyer's request."""

    path: str
    body: bytes
    headers: dict[str, str]


class Driver(abc.ABC):
    """Sends one request per buyer over a connection opened (and primed) before the race."""

    @abc.abstractmethod
    async def open(self, base_url: str, count: int) -> None: ...

    @abc.abstractmethod
    async def send(self, index: int, shot: Shot) -> tuple[int, bytes]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class HttpxDriver(Driver):
    def __init__(self) -> None:
        self.client: httpx.AsyncClient | None = None

    async def open(self, base_url: str, count: int) -> None:
        limits = httpx.Limits(
            max_connections=count, max_keepalive_connections=count, keepalive_expiry=60
        )
        self.client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT_S)
        # All at once: the pool opens one connection per buyer.
        primed = await asyncio.gather(*(self.client.get("/healthz") for _ in range(count)))
        if any(r.status_code != 200 for r in primed):
            raise RuntimeError("priming GET /healthz failed")

    async def send(self, index: int, shot: Shot) -> tuple[int, bytes]:
        assert self.client is not None
        response = await self.client.post(shot.path, content=shot.body, headers=shot.headers)
        return response.status_code, response.content

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


class RawDriver(Driver):
    """Pre-encoded HTTP/1.1 on asyncio streams, one keep-alive connection per buyer."""

    def __init__(self) -> None:
        self.host = ""
        self.port = 0
        self.streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open(self, base_url: str, count: int) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = url.host, int(url.port or 80)
        for first in range(0, count, 200):
            batch = min(200, count - first)
            self.streams += await asyncio.gather(
                *(asyncio.open_connection(self.host, self.port) for _ in range(batch))
            )
        prime = f"GET /healthz HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        statuses = await asyncio.gather(*(self._roundtrip(i, prime) for i in range(count)))
        if any(status != 200 for status, _ in statuses):
            raise RuntimeError("priming GET /healthz failed")

    def encode(self, shot: Shot) -> bytes:
        lines = [f"POST {shot.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in shot.headers.items()]
        lines.append(f"Content-Length: {len(shot.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + shot.body

    async def _roundtrip(self, index: int, payload: bytes) -> tuple[int, bytes]:
        reader, writer = self.streams[index]
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await reader.readexactly(length) if length else b""

    async def send(self, index: int, shot: Shot) -> tuple[int, bytes]:
        return await self._roundtrip(index, self.encode(shot))

    async def close(self) -> None:
        for _, writer in self.streams:
            writer.close()
        self.streams = []


def make_driver(kind: str) -> Driver:
    return RawDriver() if kind == "raw" else HttpxDriver()


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- One race ----------------------------------------------------------------------------------


@dataclass
class Race:
    variant: str
    buyers: int
    units: int
    orders: int = 0
    sold_out: int = 0
    other_errors: int = 0
    samples: list[str] = field(default_factory=list)
    wall_s: float = math.nan
    latencies_ms: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # beside latencies_ms
    client_cpu_s: float = math.nan
    server_cpu_s: float = math.nan
    db_sold: int = 0
    db_left: int = 0

    @property
    def oversold(self) -> int:
        return max(0, self.orders - self.units)

    @property
    def db_ok(self) -> bool:
        return (
            self.db_left >= 0
            and self.db_sold == self.orders
            and self.db_sold == self.units - self.db_left
        )

    @property
    def orders_per_s(self) -> float:
        return self.orders / self.wall_s

    @property
    def requests_per_s(self) -> float:
        return self.buyers / self.wall_s

    def percentile(self, pct: float, status: int | None = None) -> float:
        """Nearest-rank percentile of the latencies (of answers with ``status``), in ms."""
        ordered = sorted(
            ms
            for ms, got in zip(
                self.latencies_ms, self.statuses or [0] * len(self.latencies_ms), strict=True
            )
            if status is None or got == status
        )
        if not ordered:
            return math.nan
        return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def classify(race: Race, status: int, body: bytes) -> None:
    if status == 201:
        race.orders += 1
        return
    if status == 409:
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        if code in ("out_of_stock", "flash_sale_sold_out"):
            race.sold_out += 1
            return
    race.other_errors += 1
    if len(race.samples) < 3:
        race.samples.append(f"{status} {body[:300].decode(errors='replace')}")


async def run_race(
    race: Race, send: Callable[[int], Awaitable[tuple[int, bytes]]], server: Server | None
) -> None:
    """Release ``race.buyers`` sends together; fill in latencies, wall time and outcomes."""
    count = race.buyers
    gate, all_waiting = asyncio.Event(), asyncio.Event()
    waiting = 0
    starts = [0.0] * count
    ends = [0.0] * count
    outcomes: list[tuple[int, bytes]] = [(0, b"")] * count

    async def buyer(i: int) -> None:
        nonlocal waiting
        waiting += 1
        if waiting == count:
            all_waiting.set()
        await gate.wait()
        starts[i] = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                outcomes[i] = await send(i)
        except Exception as exc:  # a refused, reset or timed-out request is an error too
            outcomes[i] = (-1, f"{type(exc).__name__}: {exc}".encode())
        ends[i] = time.perf_counter()

    tasks = [asyncio.create_task(buyer(i)) for i in range(count)]
    await all_waiting.wait()
    cpu0, server0 = client_cpu(), server.cpu_seconds() if server else 0.0
    gate.set()
    await asyncio.gather(*tasks)
    race.client_cpu_s = client_cpu() - cpu0
    if server is not None:
        race.server_cpu_s = server.cpu_seconds() - server0
    race.wall_s = max(ends) - min(starts)
    race.latencies_ms = [(e - s) * 1000 for s, e in zip(starts, ends, strict=True)]
    race.statuses = [status for status, _ in outcomes]
    for status, body in outcomes:
        classify(race, status, body)


async def warm_up(base_url: str, shots: Sequence[Shot]) -> None:
    """Concurrent orders of a well-stocked product: code paths and database pools get warm."""
    limits = httpx.Limits(max_connections=len(shots))
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT_S
    ) as client:
        responses = await asyncio.gather(
            *(client.post(s.path, content=s.body, headers=s.headers) for s in shots)
        )
    failed = [r for r in responses if r.status_code != 201]
    if failed:
        raise RuntimeError(f"warm-up: {failed[0].status_code} {failed[0].text[:300]}")


async def http_race(
    race: Race, server: Server, shots: Sequence[Shot], warm: Sequence[Shot], client_kind: str
) -> None:
    await warm_up(server.base_url, warm)
    driver = make_driver(client_kind)
    try:
        await driver.open(server.base_url, race.buyers)

        async def send(i: int) -> tuple[int, bytes]:
            return await driver.send(i, shots[i])

        await run_race(race, send, server)
    finally:
        await driver.close()


# --- The variants ------------------------------------------------------------------------------


JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Bench:
    args: argparse.Namespace
    dsn: str
    db: asyncpg.Connection
    naive_server: Server | None
    buyer_ids: list[int]
    warm_ids: list[int]
    shops: dict[str, Shop] = field(default_factory=dict)
    next_id: int = 1

    def fresh_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # (a) ---------------------------------------------------------------------------------------

    def naive_shot(self, product_id: int, buyer: int) -> Shot:
        body = json.dumps({"product_id": product_id, "buyer": buyer}).encode()
        return Shot("/orders", body, JSON_HEADERS)

    async def run_naive(self, buyers: int, units: int, round_no: int) -> Race:
        pid = self.fresh_id()
        await self.db.execute("INSERT INTO naive_stock VALUES ($1, $2)", pid, units)
        race = Race(VARIANTS["a"], buyers, units)
        assert self.naive_server is not None
        warm = [self.naive_shot(0, b) for b in self.warm_ids]
        shots = [self.naive_shot(pid, b) for b in self.buyer_ids[:buyers]]
        await http_race(race, self.naive_server, shots, warm, self.args.client)
        race.db_sold = await self.db.fetchval(
            "SELECT count(*) FROM naive_orders WHERE product_id = $1", pid
        )
        race.db_left = await self.db.fetchval(
            "SELECT quantity FROM naive_stock WHERE product_id = $1", pid
        )
        return race

    # (b) ---------------------------------------------------------------------------------------

    async def run_ceiling(self, buyers: int, units: int, round_no: int) -> Race:
        pid = self.fresh_id()
        await self.db.execute("INSERT INTO bench_ceiling_stock VALUES ($1, $2)", pid, units)
        race = Race(VARIANTS["b"], buyers, units)
        pool = await asyncpg.create_pool(self.dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
        try:

            async def buy(product_id: int, buyer: int) -> tuple[int, bytes]:
                async with pool.acquire() as conn, conn.transaction():
                    left = await conn.fetchval(CEILING_TAKE, product_id)
                    if left is None:
                        return 409, b'{"error": {"code": "out_of_stock"}}'
                    await conn.execute(CEILING_ORDER, product_id, buyer)
                return 201, b""

            # Warm-up: every pooled connection prepares both statements.
            await asyncio.gather(*(buy(0, b) for b in self.warm_ids + self.warm_ids))
            ids = self.buyer_ids

            async def send(i: int) -> tuple[int, bytes]:
                return await buy(pid, ids[i])

            await run_race(race, send, None)
        finally:
            await pool.close()
        race.db_sold = await self.db.fetchval(
            "SELECT count(*) FROM bench_ceiling_orders WHERE product_id = $1", pid
        )
        race.db_left = await self.db.fetchval(
            "SELECT quantity FROM bench_ceiling_stock WHERE product_id = $1", pid
        )
        return race

    # (d), (e), (f) -------------------------------------------------------------------------

    def order_shot(self, token: str, product_id: int, sale: tuple[int, int] | None) -> Shot:
        body: dict[str, Any] = {
            "items": [{"product_id": product_id, "quantity": 1}],
            "ship_to": SHIP_TO,
            "payment_method": "cod",
        }
        if sale is not None:
            body.update(stream_id=sale[0], flash_sale_id=sale[1])
        # As the web client sends it: the viewer's language and currency in the query, and
        # an Idempotency-Key per checkout.
        return Shot(
            "/api/v1/orders?locale=ru&currency=RUB",
            json.dumps(body).encode(),
            {
                **JSON_HEADERS,
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": f"checkout-{token[-12:]}-{product_id}",
            },
        )

    async def run_shop(self, key: str, buyers: int, units: int, round_no: int) -> Race:
        shop = self.shops[key]
        sale: tuple[int, int] | None = None
        async with httpx.AsyncClient(base_url=shop.server.base_url, timeout=30) as http:
            pid = await create_product(http, shop.merchant, f"HOT-{key}-{buyers}-{round_no}")
            if self.args.mode == "sale":
                await set_stock(http, shop.merchant, pid, buyers)
                sale = await start_sale(http, shop.merchant, pid, units)
            else:
                await set_stock(http, shop.merchant, pid, units)
        race = Race(VARIANTS[key], buyers, units)
        warm = [self.order_shot(t, shop.warm_product, None) for t in shop.warm_tokens]
        shots = [self.order_shot(t, pid, sale) for t in shop.tokens[:buyers]]
        await http_race(race, shop.server, shots, warm, self.args.client)
        if sale is not None:
            race.db_sold = int(
                await shop.scalar(
                    "SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE flash_sale_id = $1",
                    sale[1],
                )
            )
            race.db_left = int(
                await shop.scalar("SELECT remaining FROM flash_sales WHERE id = $1", sale[1])
            )
        else:
            race.db_sold = int(
                await shop.scalar(
                    "SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE product_id = $1", pid
                )
            )
            race.db_left = int(
                await shop.scalar(
                    "SELECT quantity FROM stock WHERE product_id = $1 AND warehouse_code = $2",
                    pid,
                    WAREHOUSE,
                )
            )
        return race


@dataclass
class Shop:
    """One livecommerce deployment under test, with its own accounts and database handle."""

    server: Server
    merchant: dict[str, str]
    tokens: list[str]
    warm_tokens: list[str]
    warm_product: int
    scalar: Callable[..., Awaitable[Any]]


async def start_sale(
    http: httpx.AsyncClient, headers: dict[str, str], product_id: int, units: int
) -> tuple[int, int]:
    """A live stream with a flash sale of ``units`` of the product, one per buyer."""
    created = await http.post(
        "/api/v1/streams", headers=headers, json={"title": {"ru": "Эфир", "en": "Live"}}
    )
    if created.status_code != 201:
        raise RuntimeError(f"create stream: {created.status_code} {created.text[:300]}")
    sid = int(created.json()["id"])
    started = await http.post(f"/api/v1/streams/{sid}/start", headers=headers)
    if started.status_code != 200:
        raise RuntimeError(f"start stream: {started.status_code} {started.text[:300]}")
    sale = await http.post(
        f"/api/v1/streams/{sid}/flash-sales",
        headers=headers,
        json={
            "product_id": product_id,
            "price": {"amount": "80.00", "currency": "CNY"},
            "quantity": units,
            "duration_s": 3600,
            "per_customer_limit": 1,
        },
    )
    if sale.status_code != 201:
        raise RuntimeError(f"start sale: {sale.status_code} {sale.text[:300]}")
    return sid, int(sale.json()["id"])


async def sign_in_merchant(http: httpx.AsyncClient) -> dict[str, str]:
    registered = await http.post(
        "/api/v1/auth/register",
        json={
            "email": MERCHANT_EMAIL,
            "password": MERCHANT_PASSWORD,
            "display_name": "Flash Merchant",
            "role": "merchant",
        },
    )
    if registered.status_code != 201 and registered.status_code != 409:  # 409: another shop
        raise RuntimeError(f"register: {registered.status_code} {registered.text[:300]}")
    token = await http.post(
        "/api/v1/auth/token", data={"username": MERCHANT_EMAIL, "password": MERCHANT_PASSWORD}
    )
    if token.status_code != 200:
        raise RuntimeError(f"sign-in: {token.status_code} {token.text[:300]}")
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def create_product(http: httpx.AsyncClient, headers: dict[str, str], sku: str) -> int:
    created = await http.post(
        "/api/v1/products",
        headers=headers,
        json={
            "sku": sku,
            "title": {"ru": "Крем", "en": "Cream"},
            "price": {"amount": "120.00", "currency": "CNY"},
            "weight_grams": 180,
            "hs_code": "330499",
            "origin_country": "CN",
        },
    )
    if created.status_code != 201:
        raise RuntimeError(f"create product: {created.status_code} {created.text[:300]}")
    return int(created.json()["id"])


async def set_stock(
    http: httpx.AsyncClient, headers: dict[str, str], product_id: int, quantity: int
) -> None:
    done = await http.put(
        f"/api/v1/products/{product_id}/stock/{WAREHOUSE}",
        headers=headers,
        json={"quantity": quantity},
    )
    if done.status_code != 200:
        raise RuntimeError(f"set stock: {done.status_code} {done.text[:300]}")


# --- Output ------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


@dataclass(frozen=True)
class Summary:
    variant: str
    buyers: int
    units: int
    races: list[Race]

    def med(self, figure: Callable[[Race], float]) -> float:
        return median([figure(r) for r in self.races])


def summarize(races: list[Race]) -> list[Summary]:
    keys = list(dict.fromkeys((r.buyers, r.variant) for r in races))
    groups = {key: [r for r in races if (r.buyers, r.variant) == key] for key in keys}
    return [Summary(v, n, groups[n, v][0].units, groups[n, v]) for n, v in keys]


def cpu(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def table(summaries: list[Summary]) -> str:
    lines = [
        "| variant | requests | units | orders | oversold (each round) | wall s | orders/s "
        "| requests/s | p50 ms | p99 ms | other errors | DB ok | client CPU s | server CPU s |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for s in summaries:
        oversold = ", ".join(str(r.oversold) for r in s.races)
        db_ok = sum(r.db_ok for r in s.races)
        lines.append(
            f"| {s.variant} | {s.buyers:,} | {s.units:,} "
            f"| {s.med(lambda r: r.orders):,.0f} | {oversold} "
            f"| {s.med(lambda r: r.wall_s):.3f} | {s.med(lambda r: r.orders_per_s):,.0f} "
            f"| {s.med(lambda r: r.requests_per_s):,.0f} | {s.med(lambda r: r.percentile(50)):.1f} "
            f"| {s.med(lambda r: r.percentile(99)):.1f} "
            f"| {sum(r.other_errors for r in s.races)} | {db_ok}/{len(s.races)} "
            f"| {cpu(s.med(lambda r: r.client_cpu_s))} | {cpu(s.med(lambda r: r.server_cpu_s))} |"
        )
    return "\n".join(lines)


def print_race(race: Race, round_no: int) -> None:
    log(
        f"  round {round_no} {race.variant:<17} {race.buyers:>5} buyers: {race.orders} orders"
        f" of {race.units} units, {race.sold_out} sold out, {race.other_errors} other errors,"
        f" wall {race.wall_s:.3f} s, p50 {race.percentile(50):.1f} ms,"
        f" p99 {race.percentile(99):.1f} ms (orders {race.percentile(99, 201):.1f},"
        f" refusals {race.percentile(99, 409):.1f}), DB sold {race.db_sold} left {race.db_left}"
    )
    for sample in race.samples:
        log(f"    sample error: {sample}")


def machine_lines(pg_version: str) -> list[str]:
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"Machine: {cpu_model}, {os.cpu_count()} CPUs | Python {platform.python_version()}",
        f"PostgreSQL: {pg_version}",
    ]


def report(races: list[Race], args: argparse.Namespace, pg_version: str) -> None:
    for line in machine_lines(pg_version):
        print(line)
    print(
        f"Client: {args.client}; {args.rounds} round(s) per buyer count, medians shown;"
        f" warm-up {args.warmup} orders before each HTTP race, {args.pause:g} s pause"
        " between races."
    )
    print(
        f"Note: the client (this process), both servers and PostgreSQL share the machine's"
        f" {os.cpu_count()} CPUs; the figures include that contention."
    )
    print(
        f"Mode: {args.mode}. Servers: (d) livecommerce serve, one process, SQLAlchemy pool"
        " 10 + 20 overflow; (e) the same on SQLite; (f) serve --workers 2 with Redis;"
        f" (a) naive FastAPI + asyncpg pool up to {POOL_SIZE}; (b) asyncpg pool of {POOL_SIZE}"
        " in the client process, no HTTP."
    )
    summaries = summarize(races)
    for buyers in dict.fromkeys(s.buyers for s in summaries):
        group = [s for s in summaries if s.buyers == buyers]
        print()
        what = "a flash sale of" if args.mode == "sale" else "the stock of one SKU,"
        print(f"{buyers:,} buyers racing for {what} {group[0].units:,} units")
        print()
        print(table(group))
    print()
    print(
        "Throughput compared: requests/s = all N requests (orders and sold-out answers) over"
        " the race's wall time, since orders are capped by the units; orders/s alongside."
    )
    by_key = {(s.buyers, s.variant): s for s in summaries}
    targets = {200: (None, 150.0), 1000: (1.0, 300.0)}  # requests/s vs (a), p99 ms
    for buyers in dict.fromkeys(s.buyers for s in summaries):
        naive, ceiling = by_key.get((buyers, VARIANTS["a"])), by_key.get((buyers, VARIANTS["b"]))
        for key in OURS:
            ours = by_key.get((buyers, VARIANTS[key]))
            if ours is None:
                continue
            rps = ours.med(lambda r: r.requests_per_s)
            p99 = ours.med(lambda r: r.percentile(99))
            cpu_ms = ours.med(lambda r: r.server_cpu_s / r.buyers * 1000)
            parts = [f"  {buyers:>6,} buyers {VARIANTS[key]}: {rps:,.0f} req/s"]
            for other in (naive, ceiling):
                if other is not None:
                    theirs = other.med(lambda r: r.requests_per_s)
                    parts.append(f"{rps / theirs:.2f}x {other.variant[:3]}")
            parts.append(f"p99 {p99:,.0f} ms, server CPU {cpu_ms:.2f} ms/request")
            ratio_target, p99_target = targets.get(buyers, (None, None))
            if ratio_target is not None and naive is not None:
                ratio = rps / naive.med(lambda r: r.requests_per_s)
                parts.append(
                    f"[>= {ratio_target}x (a): {'met' if ratio >= ratio_target else 'NOT met'}]"
                )
            if p99_target is not None:
                parts.append(
                    f"[p99 <= {p99_target:.0f} ms: {'met' if p99 <= p99_target else 'NOT met'}]"
                )
            print(", ".join(parts))
    for variant in VARIANTS.values():
        mine = [r for r in races if r.variant == variant]
        if mine:
            print(
                f"  {variant}: oversold {sum(r.oversold for r in mine)} units in total over"
                f" {len(mine)} races; DB consistent in {sum(r.db_ok for r in mine)}/{len(mine)};"
                f" {sum(r.other_errors for r in mine)} other errors"
            )


# --- Entry point -------------------------------------------------------------------------------


async def open_shop(
    server: Server, scalar: Callable[..., Awaitable[Any]], tokens: list[str], most: int
) -> Shop:
    await wait_healthy(server)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        merchant = await sign_in_merchant(http)
        warm_product = await create_product(http, merchant, f"WARM-{server.name}")
        await set_stock(http, merchant, warm_product, WARM_STOCK)
    return Shop(server, merchant, tokens[:most], tokens[most:], warm_product, scalar)


def sqlite_scalar(path: Path) -> Callable[..., Awaitable[Any]]:
    import re
    import sqlite3

    def query(sql: str, *params: Any) -> Any:
        with sqlite3.connect(path, timeout=30) as conn:
            row = conn.execute(re.sub(r"\$\d+", "?", sql), params).fetchone()
        return row[0] if row else None

    async def run(sql: str, *params: Any) -> Any:
        return await asyncio.to_thread(query, sql, *params)

    return run


def sqlite_buyers(path: Path, count: int) -> list[int]:
    import sqlite3

    with sqlite3.connect(path, timeout=30) as conn:
        first = conn.execute("SELECT coalesce(max(id), 0) FROM users").fetchone()[0] + 1
        conn.executemany(
            "INSERT INTO users (email, password_hash, display_name, role, locale, currency,"
            " is_active, created_at) VALUES (?, 'not-a-password-hash', ?, 'viewer', 'ru', 'RUB',"
            " 1, datetime('now'))",
            [(f"buyer{n:05d}@flash.bench", f"Buyer {n}") for n in range(count)],
        )
        return list(range(first, first + count))


async def main_async(args: argparse.Namespace) -> int:
    name = args.database
    dsn = database_dsn(args.admin_dsn, name)
    pg_version = await create_database(args.admin_dsn, name)
    log(f"database {name} created")
    races: list[Race] = []
    servers: list[Server] = []
    problems: dict[str, list[str]] = {}
    status = 0
    chosen = args.variants
    try:
        with tempfile.TemporaryDirectory(prefix="lc-flash-") as tmp:
            workdir = Path(tmp)
            env = server_env(f"postgresql+asyncpg://{dsn.split('://', 1)[1]}", workdir)
            migrate(env)
            log("migrated")
            db = await asyncpg.connect(dsn)
            try:
                await db.execute(NAIVE_SCHEMA + CEILING_SCHEMA)
                await db.execute("INSERT INTO naive_stock VALUES (0, $1)", WARM_STOCK)
                await db.execute("INSERT INTO bench_ceiling_stock VALUES (0, $1)", WARM_STOCK)
                serve = [PYTHON, "-m", "livecommerce.cli", "serve"]
                spawned: dict[str, Server] = {}
                if "d" in chosen:
                    spawned["d"] = spawn("livecommerce", serve, env, workdir)
                if "f" in chosen:
                    # The scaled mode: rooms, the gate and the job queue in Redis (two
                    # processes on the embedded SQLite job queue would fight for its lock).
                    redis_env = {
                        **env,
                        "LIVECOMMERCE_REDIS_URL": args.redis_url,
                        "LIVECOMMERCE_BROKER_URL": args.redis_url,
                    }
                    spawned["f"] = spawn(
                        "livecommerce-x2", [*serve, "--workers", "2"], redis_env, workdir
                    )
                if "e" in chosen:
                    lite = workdir / "embedded.db"
                    lite_env = server_env(f"sqlite+aiosqlite:///{lite}", workdir / "embedded")
                    migrate(lite_env)
                    spawned["e"] = spawn("livecommerce-sqlite", serve, lite_env, workdir)
                naive = None
                if "a" in chosen:
                    naive = spawn(
                        "naive", [PYTHON, THIS_FILE, "--naive-server", "--dsn", dsn], env, workdir
                    )
                    spawned["a"] = naive
                servers.extend(spawned.values())
                if naive is not None:
                    await wait_healthy(naive)
                most = max(args.buyers)
                ids = await insert_buyers(db, most + args.warmup)
                tokens = mint_tokens(ids)
                log(f"{len(ids)} buyers inserted, tokens minted")
                bench = Bench(
                    args=args,
                    dsn=dsn,
                    db=db,
                    naive_server=naive,
                    buyer_ids=ids[:most],
                    warm_ids=ids[most:],
                )
                for key in ("d", "f"):
                    if key in spawned:
                        bench.shops[key] = await open_shop(spawned[key], db.fetchval, tokens, most)
                if "e" in spawned:
                    lite_tokens = mint_tokens(sqlite_buyers(lite, most + args.warmup))
                    bench.shops["e"] = await open_shop(
                        spawned["e"], sqlite_scalar(lite), lite_tokens, most
                    )
                log("servers up")
                runs: dict[str, Callable[[int, int, int], Awaitable[Race]]] = {
                    "a": bench.run_naive,
                    "b": bench.run_ceiling,
                    **{k: partial(bench.run_shop, k) for k in OURS if k in bench.shops},
                }
                for buyers in args.buyers:
                    units = max(1, int(buyers * args.stock_share))
                    for round_no in range(1, args.rounds + 1):
                        for key in chosen:
                            race = await runs[key](buyers, units, round_no)
                            print_race(race, round_no)
                            races.append(race)
                            await asyncio.sleep(args.pause)
            except Exception as exc:  # report what was measured, then the failure
                log(f"FAILED: {type(exc).__name__}: {exc}")
                status = 1
            finally:
                await db.close()
                for server in servers:
                    server.stop()
                    problems[server.name] = server_problems(server)
    finally:
        if args.keep_database:
            log(f"database {name} kept")
        else:
            await remove_database(args.admin_dsn, name)
            log(f"database {name} dropped")
    if races:
        report(races, args, pg_version)
    for server_name, lines in problems.items():
        if lines:
            print(f"\nNote: the {server_name} server logged {len(lines)} error/warning lines:")
            for line in lines[:15]:
                print(f"  {line[:300]}")
    return status


def buyer_counts(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("buyer counts must be positive integers")
    return list(dict.fromkeys(values))


def variant_keys(text: str) -> list[str]:
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys or any(k not in VARIANTS for k in keys):
        raise argparse.ArgumentTypeError(f"variants are some of {','.join(VARIANTS)}")
    return [k for k in VARIANTS if k in keys]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--buyers", type=buyer_counts, default=[200, 1000, 10000])
    parser.add_argument(
        "--mode",
        choices=("sale", "stock"),
        default="sale",
        help="race for a flash sale in a live stream, or for a plain SKU's stock",
    )
    parser.add_argument(
        "--variants",
        type=variant_keys,
        default=list(VARIANTS),
        help="which of a,b,d,e,f to run, in that order (default: all)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--rounds", type=int, default=3, help="races per buyer count (median)")
    parser.add_argument(
        "--stock-share", type=float, default=0.25, help="units on sale, as a share of buyers"
    )
    parser.add_argument("--warmup", type=int, default=40, help="warm-up orders per HTTP race")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument(
        "--pause", type=float, default=3.0, help="seconds of rest between races (pools drain)"
    )
    parser.add_argument("--admin-dsn", default=DEFAULT_ADMIN_DSN)
    parser.add_argument("--database", default="bench_flash")
    parser.add_argument("--keep-database", action="store_true")
    # Internal: run the naive server of variant (a) in this process.
    parser.add_argument("--naive-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.naive_server:
        run_naive_server(args.port, args.dsn)
        return 0
    if args.rounds < 1 or args.warmup < 1 or not 0 < args.stock_share < 1:
        parser.error("--rounds and --warmup must be >= 1, --stock-share between 0 and 1")
    if not args.database.replace("_", "").isalnum():
        parser.error("--database: letters, digits and underscores only")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_async(args))
    return uvloop.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
