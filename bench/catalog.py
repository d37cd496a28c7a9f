"""Catalog benchmark: CSV import throughput and memory, product-list read throughput.

Usage (from the repository root)::

    .venv/bin/python bench/catalog.py [--rows 10000,100000] [--backends sqlite,postgresql]
                                      [--reads 3000] [--concurrency 16]

For every backend and every size in ``--rows`` a fresh database and a fresh server process
(``livecommerce serve``) are started, a merchant is registered and signed in over HTTP, and a
generated CSV file is uploaded to ``POST /api/v1/products/import``. The import is timed (wall
time of the upload request) and the server's peak resident memory (``VmHWM`` in
``/proc/<pid>/status``) is read just before and just after it. The baseline is taken once the
server has started and the merchant has signed in, after resetting the peak to the current
resident size (``echo 5 > /proc/<pid>/clear_refs``): start-up (migration check) and Argon2
password hashing (64 MiB) leave a high-water mark above what the import needs, which would
otherwise hide any growth. "after" is then the peak reached during the import.

On the server holding the largest import, anonymous product-list reads are then measured:
``GET /api/v1/products?page=<1..50>&page_size=20&locale=<kk|ru|uz>`` and a search variant
whose word appears in 1% of titles. A short warm-up precedes each read series and is not
counted.

PostgreSQL is taken from ``LIVECOMMERCE_BENCH_DATABASE_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/livecommerce_bench``); the database is created
when missing and its ``public`` schema is dropped and recreated before every import. When the
server cannot be reached the backend is skipped with a note. Other ``LIVECOMMERCE_*``
variables of the calling shell are not passed to the servers, so results do not depend on them.

The script prints figures only; it never judges them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable

BACKENDS = ("sqlite", "postgresql")
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/livecommerce_bench"
MAX_UPLOAD_BYTES = 500_000_000
UPLOAD_TIMEOUT_S = 600.0
STARTUP_TIMEOUT_S = 60.0
PASSWORD = "bench-correct-horse-battery"

READ_LOCALES = ("kk", "ru", "uz")
READ_MAX_PAGE = 50
PAGE_SIZE = 20
SEARCH_EVERY = 100  # every 100th product is a thermos: the search word is in 1% of titles
SEARCH_WORD = "Термос"

CSV_COLUMNS = [
    "sku",
    "title_ru",
    "title_kk",
    "title_uz",
    "title_en",
    "title_zh",
    "description_ru",
    "description_en",
    "price",
    "currency",
    "weight_grams",
    "hs_code",
    "origin_country",
    "image_urls",
    "stock_DEDUI",
    "stock_KZALA",
]


@dataclass(frozen=True)
class Noun:
    ru: str
    kk: str
    uz: str
    en: str
    zh: str
    hs_code: str


NOUNS = [
    Noun("Чайник", "Шәйнек", "Choynak", "Kettle", "水壶", "851671"),
    Noun("Крем для лица", "Бет кремі", "Yuz kremi", "Face cream", "面霜", "330499"),
    Noun("Рюкзак", "Арқа сөмкесі", "Ryukzak", "Backpack", "背包", "420292"),
    Noun("Наушники", "Құлаққап", "Quloqchin", "Headphones", "耳机", "851830"),
    Noun("Платок", "Орамал", "Ro'mol", "Headscarf", "头巾", "621420"),
    Noun("Пиала", "Кесе", "Piyola", "Tea bowl", "茶碗", "691200"),
    Noun("Кроссовки", "Кроссовкалар", "Krossovkalar", "Sneakers", "运动鞋", "640411"),
    Noun("Зарядное устройство", "Зарядтағыш", "Quvvatlagich", "Charger", "充电器", "850440"),
    Noun("Часы", "Сағат", "Soat", "Watch", "手表", "910211"),
    Noun("Ковёр", "Кілем", "Gilam", "Carpet", "地毯", "570242"),
]
THERMOS = Noun("Термос", "Термос", "Termos", "Thermos", "保温杯", "961700")
COLOURS = [  # (ru, kk, uz, en, zh)
    ("красный", "қызыл", "qizil", "red", "红色"),
    ("синий", "көк", "ko'k", "blue", "蓝色"),
    ("чёрный", "қара", "qora", "black", "黑色"),
    ("белый", "ақ", "oq", "white", "白色"),
    ("зелёный", "жасыл", "yashil", "green", "绿色"),
]
BRANDS = ["Altyn", "Samal", "Dala", "Tumar", "Silk Road", "Baikonur", "Registan", "Nomad"]
ORIGINS = ["CN", "CN", "CN", "CN", "KZ", "UZ", "TR", "DE"]


@dataclass(frozen=True)
class ImportFigures:
    backend: str
    rows: int
    seconds: float
    rss_before_mib: float
    rss_after_mib: float


@dataclass(frozen=True)
class ReadFigures:
    backend: str
    query: str
    requests: int
    concurrency: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass(frozen=True)
class Server:
    pid: int
    base_url: str


class BackendUnavailable(Exception):
    """The database server for a backend cannot be used; the backend is skipped."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- Machine description ---------------------------------------------------------------------


def _proc_field(path: str, key: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        return None
    return None


def machine_line() -> str:
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    mem = f"{int(mem_kb.split()[0]) / 1024**2:.1f} GiB RAM" if mem_kb else "RAM unknown"
    return (
        f"Machine: {cpu}, {os.cpu_count()} CPUs, {mem} | "
        f"Python {platform.python_version()} | {date.today().isoformat()}"
    )


def reset_peak_rss(pid: int) -> bool:
    """Set the process's VmHWM back to its current RSS (Linux 4.0+); False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_rss_mib(pid: int) -> float:
    value = _proc_field(f"/proc/{pid}/status", "VmHWM")
    if value is None:
        raise RuntimeError(f"cannot read VmHWM of process {pid}")
    return int(value.split()[0]) / 1024  # the kernel reports kB


# --- CSV generation ----------------------------------------------------------------------------


def write_csv(path: Path, rows: int, seed: int = 20261120) -> None:
    """Stream ``rows`` plausible products to ``path``; nothing is held in memory."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for n in range(rows):
            noun = THERMOS if n % SEARCH_EVERY == 0 else rng.choice(NOUNS)
            ru, kk, uz, en, zh = rng.choice(COLOURS)
            brand = rng.choice(BRANDS)
            model = f"{rng.choice('ABCDKMSX')}{rng.randint(10, 999)}"
            sku = f"BENCH-{n:07d}"
            images = "|".join(
                f"https://img.example.com/{sku.lower()}/{k}.jpg" for k in range(rng.randint(0, 3))
            )
            description_en = (
                f"{noun.en} by {brand}, {en}. Warranty {rng.randint(1, 24)} months."
                if rng.random() < 0.7
                else ""
            )
            writer.writerow(
                [
                    sku,
                    f"{noun.ru} {brand} {model}, {ru}",
                    f"{noun.kk} {brand} {model}, {kk}",
                    f"{noun.uz} {brand} {model}, {uz}",
                    f"{noun.en} {brand} {model}, {en}",
                    f"{brand} {zh}{noun.zh} {model}",
                    f"{noun.ru} от {brand}, цвет: {ru}. Гарантия {rng.randint(1, 24)} мес.",
                    description_en,
                    f"{rng.uniform(5, 3000):.2f}",
                    "CNY" if rng.random() < 0.9 else "EUR",
                    rng.randint(50, 25_000),
                    noun.hs_code,
                    rng.choice(ORIGINS),
                    images,
                    "" if rng.random() < 0.1 else rng.randint(0, 500),
                    "" if rng.random() < 0.1 else rng.randint(0, 500),
                ]
            )


# --- PostgreSQL --------------------------------------------------------------------------------


async def _reset_postgres(url: str) -> str:
    """Create the database if needed and empty its public schema; return the server version."""
    target = make_url(url).set(drivername="postgresql")
    name = target.database
    if not name:
        raise BackendUnavailable(f"no database name in {url!r}")
    admin_dsn = target.set(database="postgres").render_as_string(hide_password=False)
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
    except Exception as exc:  # refused, unknown host, bad password, timeout...
        raise BackendUnavailable(f"{type(exc).__name__}: {exc}") from exc
    try:
        version = str(await admin.fetchval("SHOW server_version"))
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            quoted = '"' + name.replace('"', '""') + '"'
            with suppress(asyncpg.DuplicateDatabaseError):  # created meanwhile by another run
                await admin.execute(f"CREATE DATABASE {quoted}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(target.render_as_string(hide_password=False), timeout=10)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    return version


def reset_postgres(url: str) -> str:
    return asyncio.run(_reset_postgres(url))


# --- Server process ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    env.update(
        LIVECOMMERCE_DATABASE_URL=database_url,
        LIVECOMMERCE_DATA_DIR=str(data_dir),
        LIVECOMMERCE_LOG_LEVEL="warning",
        LIVECOMMERCE_MAX_UPLOAD_BYTES=str(MAX_UPLOAD_BYTES),
    )
    return env


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def migrate(env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "livecommerce.cli", "migrate"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed ({done.returncode}):\n{done.stderr[-2000:]}")


@contextmanager
def running_server(env: dict[str, str], workdir: Path) -> Iterator[Server]:
    """A ``livecommerce serve`` subprocess, healthy on yield, always stopped afterwards."""
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [PYTHON, "-m", "livecommerce.cli", "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            server = Server(pid=proc.pid, base_url=f"http://127.0.0.1:{port}")
            _wait_healthy(server, proc, log_path)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(server: Server, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {proc.returncode} during start-up:\n{_tail(log_path)}"
                )
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {STARTUP_TIMEOUT_S:.0f} s:\n{_tail(log_path)}")


# --- HTTP steps --------------------------------------------------------------------------------


def sign_in_merchant(client: httpx.Client) -> dict[str, str]:
    email = "bench-merchant@example.kz"
    registered = client.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "display_name": "Bench Merchant",
            "role": "merchant",
            "currency": "CNY",
        },
    )
    if registered.status_code != 201:
        raise RuntimeError(f"register failed: {registered.status_code} {registered.text[:500]}")
    token = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    if token.status_code != 200:
        raise RuntimeError(f"sign-in failed: {token.status_code} {token.text[:500]}")
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def upload_csv(
    client: httpx.Client, headers: dict[str, str], csv_path: Path, rows: int, label: str
) -> float:
    """Upload the file (streamed from disk) and return the request's wall time in seconds."""
    with csv_path.open("rb") as fh:
        started = time.perf_counter()
        response = client.post(
            "/api/v1/products/import",
            headers=headers,
            files={"file": ("catalog.csv", fh, "text/csv")},
            timeout=UPLOAD_TIMEOUT_S,
        )
        seconds = time.perf_counter() - started
    if response.status_code != 200:
        log(f"WARNING {label}: import returned {response.status_code}: {response.text[:500]}")
        return seconds
    body = response.json()
    if body.get("created") != rows or body.get("failed") != 0:
        log(
            f"WARNING {label}: expected created={rows} failed=0, got "
            f"created={body.get('created')} updated={body.get('updated')} "
            f"failed={body.get('failed')} first errors={body.get('errors', [])[:3]}"
        )
    return seconds


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def _read_series(
    base_url: str, params: list[dict[str, str]], concurrency: int
) -> tuple[float, list[float], int]:
    """Run the requests with ``concurrency`` workers; (seconds, latencies in ms, errors)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0) as client:

        async def run(batch: list[dict[str, str]], record: bool) -> None:
            jobs = iter(batch)  # shared: each worker takes the next request when free

            async def worker() -> None:
                nonlocal errors
                for query in jobs:
                    started = time.perf_counter()
                    try:
                        response = await client.get("/api/v1/products", params=query)
                        ok = response.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    if record:
                        latencies.append(elapsed_ms)
                        errors += 0 if ok else 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await run(params[: concurrency * 2], record=False)  # warm-up: connections, caches
        started = time.perf_counter()
        await run(params, record=True)
        seconds = time.perf_counter() - started
    return seconds, latencies, errors


def measure_reads(
    backend: str,
    base_url: str,
    label: str,
    params: list[dict[str, str]],
    concurrency: int,
) -> ReadFigures:
    seconds, latencies, errors = asyncio.run(_read_series(base_url, params, concurrency))
    latencies.sort()
    if errors:
        log(f"WARNING {backend} {label}: {errors} of {len(params)} requests failed")
    return ReadFigures(
        backend=backend,
        query=label,
        requests=len(params),
        concurrency=concurrency,
        seconds=seconds,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        errors=errors,
    )


def list_params(count: int, rng: random.Random) -> list[dict[str, str]]:
    return [
        {
            "page": str(rng.randint(1, READ_MAX_PAGE)),
            "page_size": str(PAGE_SIZE),
            "locale": READ_LOCALES[i % len(READ_LOCALES)],
        }
        for i in range(count)
    ]


def search_params(count: int, rows: int, rng: random.Random) -> list[dict[str, str]]:
    matches = math.ceil(rows / SEARCH_EVERY)
    last_page = max(1, min(READ_MAX_PAGE, math.ceil(matches / PAGE_SIZE)))
    return [
        {
            "q": SEARCH_WORD,
            "page": str(rng.randint(1, last_page)),
            "page_size": str(PAGE_SIZE),
            "locale": READ_LOCALES[i % len(READ_LOCALES)],
        }
        for i in range(count)
    ]


# --- One backend -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    sizes: list[int]
    reads: int
    search_reads: int
    concurrency: int


def bench_backend(
    backend: str, options: Options, csv_files: dict[int, Path], workdir: Path
) -> tuple[list[ImportFigures], list[ReadFigures]]:
    imports: list[ImportFigures] = []
    reads: list[ReadFigures] = []
    pg_url = os.environ.get("LIVECOMMERCE_BENCH_DATABASE_URL", DEFAULT_PG_URL)
    for rows in options.sizes:
        label = f"{backend} {rows:,} rows"
        run_dir = Path(tempfile.mkdtemp(prefix=f"{backend}-{rows}-", dir=workdir))
        if backend == "sqlite":
            database_url = f"sqlite+aiosqlite:///{(run_dir / 'bench.db').as_posix()}"
        else:
            version = reset_postgres(pg_url)
            log(f"{label}: PostgreSQL {version}, schema public reset")
            database_url = pg_url
        env = server_env(database_url, run_dir)
        migrate(env, run_dir)
        with running_server(env, run_dir) as server:
            with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
                headers = sign_in_merchant(client)
                if not reset_peak_rss(server.pid):
                    log(f"WARNING {label}: cannot reset VmHWM; 'before' includes start-up peaks")
                before = peak_rss_mib(server.pid)
                log(f"{label}: importing...")
                seconds = upload_csv(client, headers, csv_files[rows], rows, label)
                after = peak_rss_mib(server.pid)
            imports.append(ImportFigures(backend, rows, seconds, before, after))
            log(f"{label}: {seconds:.2f} s, peak RSS {before:.1f} -> {after:.1f} MiB")
            if rows == options.sizes[-1]:
                rng = random.Random(rows)
                log(f"{label}: reads...")
                reads.append(
                    measure_reads(
                        backend,
                        server.base_url,
                        "list page 1-50, locale kk/ru/uz",
                        list_params(options.reads, rng),
                        options.concurrency,
                    )
                )
                reads.append(
                    measure_reads(
                        backend,
                        server.base_url,
                        f"search q={SEARCH_WORD} (1% of titles)",
                        search_params(options.search_reads, rows, rng),
                        options.concurrency,
                    )
                )
    return imports, reads


# --- Output ------------------------------------------------------------------------------------


def import_table(figures: list[ImportFigures]) -> str:
    lines = [
        "| backend | rows | seconds | rows/s | server peak RSS MiB before | after | growth |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.backend} | {f.rows:,} | {f.seconds:.2f} | {f.rows / f.seconds:,.0f} "
            f"| {f.rss_before_mib:.1f} | {f.rss_after_mib:.1f} "
            f"| {f.rss_after_mib - f.rss_before_mib:+.1f} |"
        )
    return "\n".join(lines)


def read_table(figures: list[ReadFigures]) -> str:
    lines = [
        "| backend | query | requests | concurrency | req/s | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        failed = f" ({f.errors} failed)" if f.errors else ""
        lines.append(
            f"| {f.backend} | {f.query} | {f.requests:,}{failed} | {f.concurrency} "
            f"| {f.requests / f.seconds:,.0f} | {f.p50_ms:.1f} | {f.p99_ms:.1f} |"
        )
    return "\n".join(lines)


# --- Entry point -------------------------------------------------------------------------------


def _positive_ints(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from exc
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return values


def _backends(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"backends are {', '.join(BACKENDS)}; got {text!r}")
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=_positive_ints, default=[10_000, 100_000], help="CSV sizes, comma-separated"
    )
    parser.add_argument(
        "--backends", type=_backends, default=list(BACKENDS), help="sqlite,postgresql"
    )
    parser.add_argument("--reads", type=int, default=3000, help="product-list requests")
    parser.add_argument("--search-reads", type=int, default=1000, help="search requests")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent requests")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.reads < 1 or args.search_reads < 1 or args.concurrency < 1:
        print("--reads, --search-reads and --concurrency must be at least 1", file=sys.stderr)
        return 2
    options = Options(
        sizes=args.rows,
        reads=args.reads,
        search_reads=args.search_reads,
        concurrency=args.concurrency,
    )
    imports: list[ImportFigures] = []
    reads: list[ReadFigures] = []
    notes: list[str] = []
    status = 0
    with tempfile.TemporaryDirectory(prefix="livecommerce-bench-") as tmp:
        workdir = Path(tmp)
        csv_files: dict[int, Path] = {}
        for rows in options.sizes:
            csv_files[rows] = workdir / f"catalog-{rows}.csv"
            started = time.perf_counter()
            write_csv(csv_files[rows], rows)
            size_mib = csv_files[rows].stat().st_size / 1024**2
            log(f"CSV {rows:,} rows: {size_mib:.1f} MiB in {time.perf_counter() - started:.1f} s")
        for backend in args.backends:
            try:
                backend_imports, backend_reads = bench_backend(backend, options, csv_files, workdir)
            except BackendUnavailable as exc:
                notes.append(f"{backend}: skipped, server not reachable ({exc})")
                log(notes[-1])
                continue
            except Exception as exc:  # report and go on with the other backends
                notes.append(f"{backend}: FAILED, {type(exc).__name__}: {exc}")
                log(notes[-1])
                status = 1
                continue
            imports.extend(backend_imports)
            reads.extend(backend_reads)

    print(machine_line())
    print()
    for note in notes:
        print(f"Note: {note}")
    if notes:
        print()
    print(
        "CSV import (wall time of the upload request; fresh server per size; peak RSS reset"
        " to the current RSS after sign-in, then read after the import)"
    )
    print()
    print(import_table(imports))
    print()
    print(f"Anonymous product reads on the {options.sizes[-1]:,}-row database")
    print()
    print(read_table(reads))
    return status


if __name__ == "__main__":
    sys.exit(main())
