"""Join storm: thousands of guest viewers entering one live room of ``livecommerce serve`` at once.

Usage (from the repository root)::

    .venv/bin/python bench/join_storm.py [--viewers 1000,5000] [--announce-rate 5]
                                         [--postgres postgresql+asyncpg://...]
                                         [--redis redis://127.0.0.1:6379/13]
                                         [--root /path/to/another/checkout]
                                         [--profile server.prof]

One real server process (``python -m livecommerce.cli serve``, embedded SQLite by default;
``--postgres`` points it at a database this script drops and creates first; ``--redis`` at a
Redis database it flushes first). Through the public API: a merchant, a product, a live
stream with that product pinned and a flash sale running, and a guest token. One viewer
stays in the room throughout (a live room already has viewers). Then, per size:

- **join storm**: every viewer connects at the same moment (kk, ru, uz; KZT, RUB, UZS, USD,
  so twelve (locale, currency) groups). Time from the first connect to each viewer's
  ``welcome``: the last one, p50 and p99; the server's CPU (user + system of its process,
  from ``/proc/<pid>/stat``) from the first connect to the last welcome, per join.
- **events during a storm**: the viewers leave, and come back in a second storm while the
  host posts announcements through the REST API (``--announce-rate`` a second). Latency from
  just before the POST to each viewer reading the announcement, p50 and p99, over every
  viewer that received it.
- **reconnect storm**: the server is stopped (SIGTERM, a drain) and started again on the same
  port and data; every viewer reconnects at once with ``last_seq``, ignoring any delay the
  server's close asked for (the worst case). The same figures as the join storm, plus how
  many close frames carried a reconnect hint and the spread of those hints.

``--root`` serves another checkout's ``livecommerce`` (for example the commit this branch
started from) with this one's virtualenv, so both run on this machine in one session. The
client is bench/fanout.py's minimal ``asyncio.Protocol`` WebSocket client, in this process,
sharing the machine's cores with the server. The script prints figures; it never judges them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import tempfile
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
from fanout import (
    PYTHON,
    ROOT,
    SECRET,
    Tally,
    Viewer,
    client_cpu,
    cpu_seconds,
    free_port,
    handshake,
    machine,
    percentile,
    wait_listening,
)

LOCALES = ("kk", "ru", "uz")
CURRENCIES = ("KZT", "RUB", "UZS", "USD")
MARK = b"storm#"
# ``livecommerce serve`` under cProfile. uvicorn re-raises SIGTERM once it has shut down,
# with the handler that was there before it: this one writes the stats and exits.
PROFILED = """
import cProfile, runpy, signal, sys
profile = cProfile.Profile()
def done(*_):
    profile.disable()
    profile.dump_stats({out!r})
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
sys.argv = ["livecommerce", "serve", "--port", sys.argv[2]]
profile.enable()
runpy.run_module("livecommerce.cli", run_name="__main__")
"""


@dataclass
class Storm:
    """What one storm's viewers saw."""

    started: float
    welcomed: array = field(default_factory=lambda: array("d"))  # seconds after ``started``
    sent: dict[int, float] = field(default_factory=dict)  # announcement -> perf_counter
    latencies: array = field(default_factory=lambda: array("d"))
    failed: int = 0


class StormViewer(Viewer):
    def __init__(self, request: bytes, tally: Tally, storm: Storm) -> None:
        super().__init__(request, tally, socketio=False)
        self.storm = storm
        self.last_seq = 0
        self.close_reason = b""

    def _control(self, payload: bytes) -> None:
        if b'"welcome"' in payload:
            self.storm.welcomed.append(time.perf_counter() - self.storm.started)
            self.last_seq = _int_after(payload, b'"last_seq":', 0, len(payload)) or 0
        super()._control(payload)

    def on_text(self, buffer: bytes, start: int, stop: int) -> None:
        seq = _int_after(buffer, b'"seq":', start, stop)
        if seq is not None:
            self.last_seq = max(self.last_seq, seq)
        mark = buffer.find(MARK, start, stop)
        if mark >= 0:
            sent = self.storm.sent.get(_int_after(buffer, MARK, start, stop) or -1)
            if sent is not None:
                self.storm.latencies.append(time.perf_counter() - sent)

    def on_close(self, payload: bytes) -> None:
        self.close_reason = payload[2:]


def _int_after(buffer: bytes, key: bytes, start: int, stop: int) -> int | None:
    at = buffer.find(key, start, stop)
    if at < 0:
        return None
    at += len(key)
    end = at
    while end < stop and 48 <= buffer[end] <= 57:
        end += 1
    return int(buffer[at:end]) if end > at else None


# --- the server ---------------------------------------------------------------------------


@dataclass
class Server:
    root: Path
    env: dict[str, str]
    port: int
    log: Path
    profile: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        with self.log.open("ab") as out:
            command = ["-m", "livecommerce.cli", "serve", "--port", str(self.port)]
            if self.profile:
                command = ["-c", PROFILED.format(out=str(self.profile)), "serve", str(self.port)]
            self.proc = subprocess.Popen(
                [PYTHON, *command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        await wait_listening(self.port, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def reset_postgres(url: str) -> None:
    import asyncpg

    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    base, _, name = plain.rpartition("/")
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def served(args: argparse.Namespace, workdir: Path) -> AsyncIterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    env.update(
        LIVECOMMERCE_DATA_DIR=str(data),
        LIVECOMMERCE_SECRET_KEY=SECRET,
        LIVECOMMERCE_LOG_LEVEL="warning",
        # Every simulated viewer connects from this one machine (as guests, by address).
        LIVECOMMERCE_ROOM_GUEST_SOCKETS_PER_ADDRESS="1000000",
        LIVECOMMERCE_EMBEDDED_WORKER="false",
        PYTHONPATH=str(args.root),
    )
    if args.postgres:
        await reset_postgres(args.postgres)
        env["LIVECOMMERCE_DATABASE_URL"] = args.postgres
    if args.redis:
        import redis

        client = redis.Redis.from_url(args.redis)
        client.flushdb()
        client.close()
        env["LIVECOMMERCE_REDIS_URL"] = args.redis
    subprocess.run(
        [PYTHON, "-m", "livecommerce.cli", "migrate"],
        env=env,
        check=True,
        capture_output=True,
        cwd=args.root,
    )
    server = Server(args.root, env, free_port(), workdir / "server.log", args.profile)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Room:
    stream_id: int
    host: dict[str, str]
    guest: str


async def prepare_room(http: httpx.AsyncClient) -> Room:
    """A merchant's live stream with a pinned product and a running flash sale."""
    email, password = "host@storm.bench", "storm-bench-password"
    registered = await http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password, "display_name": "Host", "role": "merchant"},
    )
    registered.raise_for_status()
    token = await http.post("/api/v1/auth/token", data={"username": email, "password": password})
    token.raise_for_status()
    host = {"Authorization": f"Bearer {token.json()['access_token']}"}
    product = await http.post(
        "/api/v1/products",
        json={
            "sku": "STORM-1",
            "title": {"ru": "Шёлковый платок", "kk": "Жібек орамал", "uz": "Ipak roʻmol"},
            "description": {"ru": "Платок, 90 × 90 см"},
            "price": {"amount": "120.00", "currency": "CNY"},
            "weight_grams": 80,
            "hs_code": "621410",
            "origin_country": "CN",
            "image_urls": ["https://img.example.com/scarf.jpg"],
        },
        headers=host,
    )
    product.raise_for_status()
    product_id = product.json()["id"]
    title = {"kk": "Эфир", "ru": "Эфир", "uz": "Efir"}
    created = await http.post("/api/v1/streams", json={"title": title}, headers=host)
    created.raise_for_status()
    stream_id = int(created.json()["id"])
    for path, body in (
        (f"/api/v1/streams/{stream_id}/start", None),
        (f"/api/v1/streams/{stream_id}/pins", {"product_id": product_id}),
        (
            f"/api/v1/streams/{stream_id}/flash-sales",
            {
                "product_id": product_id,
                "price": {"amount": "99.00", "currency": "CNY"},
                "quantity": 500,
                "duration_s": 3600,
            },
        ),
    ):
        response = await http.post(path, json=body, headers=host)
        response.raise_for_status()
    guest = await http.post("/api/v1/auth/guest")
    guest.raise_for_status()
    return Room(stream_id, host, str(guest.json()["access_token"]))


# --- storms -------------------------------------------------------------------------------


def path(room: Room, n: int, last_seq: int | None = None) -> str:
    locale, currency = LOCALES[n % 3], CURRENCIES[(n // 3) % len(CURRENCIES)]
    query = f"token={room.guest}&locale={locale}&currency={currency}"
    return f"/ws/streams/{room.stream_id}?{query}" + (
        f"&last_seq={last_seq}" if last_seq is not None else ""
    )


@dataclass
class Figures:
    viewers: int
    welcomed: int
    failed: int
    last_s: float
    p50_ms: float
    p99_ms: float
    cpu_per_join_ms: float
    cpu_s: float
    sys_s: float
    client_cpu_s: float
    event_p50_ms: float = float("nan")
    event_p99_ms: float = float("nan")
    events: int = 0


async def announcer(http: httpx.AsyncClient, room: Room, storm: Storm, rate: float) -> None:
    n = 0
    while True:
        n += 1
        text = f"{MARK.decode()}{n} скидка"
        storm.sent[n] = time.perf_counter()
        response = await http.post(
            f"/api/v1/streams/{room.stream_id}/announcements",
            json={"text": {"ru": text, "kk": text, "uz": text}},
            headers=room.host,
        )
        response.raise_for_status()
        await asyncio.sleep(max(0.0, storm.sent[n] + 1 / rate - time.perf_counter()))


async def storm(
    server: Server,
    room: Room,
    paths: list[str],
    *,
    http: httpx.AsyncClient | None = None,
    announce_rate: float = 0,
) -> tuple[Figures, list[StormViewer]]:
    loop = asyncio.get_running_loop()
    tally = Tally()
    user0, sys0 = cpu_seconds([server.pid])
    client0 = client_cpu()
    record = Storm(time.perf_counter())
    made = await asyncio.gather(
        *(
            loop.create_connection(
                partial(StormViewer, handshake(server.port, p), tally, record),
                "127.0.0.1",
                server.port,
            )
            for p in paths
        ),
        return_exceptions=True,
    )
    viewers = [result[1] for result in made if not isinstance(result, BaseException)]
    record.failed = len(paths) - len(viewers)
    events = None
    if http is not None and announce_rate > 0:
        events = asyncio.create_task(announcer(http, room, record, announce_rate))
    deadline = time.perf_counter() + 180
    while len(record.welcomed) + tally.closed < len(viewers) and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    user1, sys1 = cpu_seconds([server.pid])
    cpu, system = user1 - user0 + sys1 - sys0, sys1 - sys0
    client = client_cpu() - client0
    if events is not None:
        await asyncio.sleep(1.0)  # the last announcements reach everyone
        events.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await events
    welcomed = array("d", sorted(record.welcomed))
    figures = Figures(
        viewers=len(paths),
        welcomed=len(welcomed),
        failed=record.failed + tally.closed,
        last_s=welcomed[-1] if welcomed else float("nan"),
        p50_ms=percentile(welcomed, 0.5),
        p99_ms=percentile(welcomed, 0.99),
        cpu_per_join_ms=cpu / max(1, len(welcomed)) * 1000,
        cpu_s=cpu,
        sys_s=system,
        client_cpu_s=client,
    )
    if record.latencies:
        figures.event_p50_ms = percentile(record.latencies, 0.5)
        figures.event_p99_ms = percentile(record.latencies, 0.99)
        figures.events = len(record.sent)
    return figures, viewers


async def leave(viewers: list[StormViewer]) -> None:
    for viewer in viewers:
        if viewer.transport is not None:
            viewer.transport.close()
    await asyncio.sleep(1.0)


def line(name: str, f: Figures) -> str:
    text = (
        f"    {name:<22} welcomed {f.welcomed:>5,}/{f.viewers:<5,} last {f.last_s:6.2f} s"
        f"  p50 {f.p50_ms:7.0f} ms  p99 {f.p99_ms:7.0f} ms"
        f"  server cpu {f.cpu_s:6.2f} s ({f.sys_s / f.cpu_s if f.cpu_s else 0:.0%} sys)"
        f" = {f.cpu_per_join_ms:5.2f} ms/join"
        f"  client cpu {f.client_cpu_s:5.2f} s"
    )
    if f.failed:
        text += f"  failed {f.failed}"
    if f.events:
        text += f"\n    {'':<22} {f.events} announcements: p50 {f.event_p50_ms:7.0f} ms"
        text += f"  p99 {f.event_p99_ms:7.0f} ms"
    return text


async def bench_size(args: argparse.Namespace, viewers: int, workdir: Path) -> None:
    async with served(args, workdir) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            room = await prepare_room(http)
            resident, _ = await storm(server, room, [path(room, 0)])
            assert resident.welcomed == 1, "the resident viewer was not welcomed"
            paths = [path(room, n) for n in range(viewers)]
            print(f"  {viewers:,} viewers", flush=True)
            joined, crowd = await storm(server, room, paths)
            print(line("join storm", joined), flush=True)
            await leave(crowd)
            during, crowd = await storm(
                server, room, paths, http=http, announce_rate=args.announce_rate
            )
            print(line("events during a storm", during), flush=True)
        # The drain: the server closes every socket (with its reason), then starts again.
        server.stop()
        await asyncio.sleep(0.5)
        reasons = [v.close_reason for v in crowd]
        hints = sorted(
            int(r.split(b"retry_after_ms=", 1)[1].rstrip(b")"))
            for r in reasons
            if b"retry_after_ms=" in r
        )
        seqs = [v.last_seq for v in crowd]
        await server.start()
        again, crowd = await storm(
            server, room, [path(room, n, seqs[n]) for n in range(len(crowd))]
        )
        print(line("reconnect storm", again), flush=True)
        if hints:
            print(
                f"    {'':<22} {len(hints):,}/{len(reasons):,} close frames carried a reconnect"
                f" hint: {hints[0]}..{hints[-1]} ms, median {hints[len(hints) // 2]} ms",
                flush=True,
            )
        else:
            print(f"    {'':<22} no close frame carried a reconnect hint", flush=True)
        await leave(crowd)


async def main_async(args: argparse.Namespace) -> None:
    database = "PostgreSQL" if args.postgres else "embedded SQLite"
    broker = "Redis" if args.redis else "in-process broker"
    print(f"Join storm on {machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"server: {args.root} ({database}, {broker}, one process)")
    for viewers in args.viewers:
        with tempfile.TemporaryDirectory(prefix="lc-storm-") as tmp:
            try:
                await bench_size(args, viewers, Path(tmp))
            except Exception as exc:  # report and go on with the next size
                print(f"  {viewers:,} viewers failed: {exc!r}", flush=True)
                log = Path(tmp) / "server.log"
                if log.exists():
                    print(log.read_text()[-2000:], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="1000,5000")
    parser.add_argument("--announce-rate", type=float, default=5.0, help="announcements/s")
    parser.add_argument("--postgres", help="a database URL; that database is dropped first")
    parser.add_argument("--redis", help="a Redis URL; that database is flushed first")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument(
        "--profile", type=Path, help="run the server under cProfile, stats written here"
    )
    args = parser.parse_args()
    args.viewers = [int(v) for v in args.viewers.split(",")]
    args.root = args.root.resolve()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(args))
    else:
        uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
