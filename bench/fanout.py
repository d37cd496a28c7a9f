"""Room fan-out benchmark: livecommerce rooms beside three baselines, in one run.

Usage (from the repository root; python-socketio comes with the ``bench`` extra)::

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/fanout.py [--viewers 1000,5000,10000]
                                     [--variants ceiling,naive,socketio,livecommerce,redis2]
                                     [--seconds 5] [--burst-frames 1000000]

Servers (see bench/fanout_servers.py, each in its own process):

- ``ceiling``: one pre-encoded frame per locale written straight to each socket;
- ``naive``: a FastAPI room, ``await ws.send_json(...)`` per connection;
- ``socketio``: python-socketio's AsyncServer, one room per locale;
- ``livecommerce``: the application as ``livecommerce serve`` runs it, one process;
- ``redis2``: two livecommerce processes sharing the room through Redis
  (``LIVECOMMERCE_BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/14``, flushed first);
  viewers are split between them and events are published on the first.

For each server and each viewer count, one client process (this one) opens the viewers over
real sockets, spread evenly over kk, ru and uz. Its WebSocket client is a small
``asyncio.Protocol`` that only parses frame headers and the ``t0`` stamp, so that it costs
the client far less than the servers spend (it answers pings and Socket.IO's handshake).

Per server and size it reports:

- memory per idle connection: the servers' resident memory (``VmRSS``) once every viewer has
  its welcome, minus before the first one connected, divided by the viewers;
- a paced run: events at a fixed total load of about 50,000 frames a second
  (``--load``; 50 events/s for 1,000 viewers, 10 for 5,000, 5 for 10,000) for ``--seconds``:
  delivered frames per second of server CPU (user + system time of the server processes,
  from ``/proc/<pid>/stat``, over the run), and publish-to-receive latency p50 / p99;
- the latency run the targets name: 100 events/s to every viewer count in ``--latency-at``
  (default 5,000) for ``--seconds``, with the same figures; a server that cannot keep up
  falls behind its schedule, and since each event's ``t0`` is the moment it was due, that
  shows as latency;
- a burst: events published back to back, as many as make ``--burst-frames`` deliveries
  (1,000 events to 1,000 viewers, 200 to 5,000, 100 to 10,000); events delivered per second
  of server CPU and of wall time. livecommerce delivers a burst as one write per socket.

Latency is measured from the moment an event was due (``t0``, set by the publishing server)
to the moment the client read it; both run on this machine's clock. The script prints figures
only; it never judges them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
SERVERS = ROOT / "bench" / "fanout_servers.py"
LOCALES = ("kk", "ru", "uz")
VARIANTS = ("ceiling", "naive", "socketio", "livecommerce", "redis2")
CLK_TCK = os.sysconf("SC_CLK_TCK")
RUNS = itertools.count(1)
SECRET = "fanout-benchmark-secret-key-not-for-production"


# --- the client ---------------------------------------------------------------------------


@dataclass
class Tally:
    """What all viewers of one run have received."""

    ready: int = 0
    frames: int = 0
    latencies: array = field(default_factory=lambda: array("d"))
    closed: int = 0

    def reset(self) -> None:
        self.frames = 0
        self.latencies = array("d")


def masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask; a zero mask leaves the payload as it is)."""
    return bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


class Viewer(asyncio.Protocol):
    def __init__(self, request: bytes, tally: Tally, socketio: bool) -> None:
        self.request = request
        self.tally = tally
        self.socketio = socketio
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.is_ready = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        assert self.transport is not None
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.closed += 1

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = buffer
                return
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"handshake refused: {head[:200]!r}")
            self.upgraded, buffer = True, rest
        at, end = 0, len(buffer)
        tally = self.tally
        now = 0.0
        while end - at >= 2:
            size = buffer[at + 1] & 0x7F
            start = at + 2
            if size == 126:
                if end - at < 4:
                    break
                size = int.from_bytes(buffer[at + 2 : at + 4], "big")
                start = at + 4
            elif size == 127:
                if end - at < 10:
                    break
                size = int.from_bytes(buffer[at + 2 : at + 10], "big")
                start = at + 10
            stop = start + size
            if stop > end:
                break
            opcode = buffer[at] & 0x0F
            at = stop
            if opcode == 0x1:
                mark = buffer.find(b'"t0":', start, stop)
                if mark >= 0:
                    close = buffer.find(b"}", mark, stop)
                    if not now:
                        now = time.time()
                    tally.latencies.append(now - float(buffer[mark + 5 : close]))
                    tally.frames += 1
                elif not self.is_ready:
                    self._control(buffer[start:stop])
                elif self.socketio and buffer[start:stop] == b"2":
                    self._send_text(b"3")  # Engine.IO ping
                else:
                    self.on_text(buffer, start, stop)
            elif opcode == 0x8:
                self.on_close(buffer[start:stop])
            elif opcode == 0x9:
                assert self.transport is not None
                self.transport.write(masked(0xA, buffer[start:stop]))
        self.buffer = buffer[at:] if at < end else b""

    def on_text(self, buffer: bytes, start: int, stop: int) -> None:
        """Any other text frame after the welcome (bench/join_storm.py looks at them)."""
        self.on_frame(buffer[start:stop])

    def on_close(self, payload: bytes) -> None:
        """The server's close frame: a 2-byte code, then the reason."""

    def on_frame(self, payload: bytes) -> None:
        """A text frame after the welcome without a ``t0`` stamp (bench/pin_herd.py reads
        them); ignored here."""

    def _send_text(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(masked(0x1, payload))

    def _control(self, payload: bytes) -> None:
        if self.socketio:
            if payload.startswith(b"0{"):
                self._send_text(b"40")  # join the default namespace
            elif payload.startswith(b"40"):
                self._ready()
        elif b'"welcome"' in payload:
            self._ready()

    def _ready(self) -> None:
        self.is_ready = True
        self.tally.ready += 1


def handshake(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def open_viewers(
    targets: list[tuple[int, str]], tally: Tally, socketio: bool, *, batch: int = 200
) -> list[asyncio.Transport]:
    """Connect one viewer per (port, path), ``batch`` handshakes at a time."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    for first in range(0, len(targets), batch):
        chunk = targets[first : first + batch]
        made = await asyncio.gather(
            *(
                loop.create_connection(
                    partial(Viewer, handshake(port, path), tally, socketio), "127.0.0.1", port
                )
                for port, path in chunk
            )
        )
        transports.extend(t for t, _ in made)
        async with asyncio.timeout(60):
            while tally.ready < len(transports):
                await asyncio.sleep(0.01)
    return transports


# --- the servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """User and system CPU seconds of the processes so far."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


@dataclass
class Deployment:
    variant: str
    ports: list[int]
    pids: list[int]
    stream_id: int = 0
    token: str = ""

    def path(self, locale: str) -> str:
        if self.variant in ("livecommerce", "redis2"):
            return f"/ws/streams/{self.stream_id}?token={self.token}&locale={locale}"
        if self.variant == "socketio":
            return f"/socket.io/?EIO=4&transport=websocket&locale={locale}"
        if self.variant == "naive":
            return f"/ws/bench?locale={locale}"
        return f"/bench?locale={locale}"

    def publish_url(self, count: int, rate: float) -> str:
        url = f"http://127.0.0.1:{self.ports[0]}/bench/publish?count={count}&rate={rate}"
        return url + (f"&stream_id={self.stream_id}" if self.stream_id else "")


async def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with asyncio.timeout(60):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return


@contextlib.asynccontextmanager
async def deployed(variant: str, workdir: Path, redis_url: str) -> AsyncIterator[Deployment]:
    kind = "livecommerce" if variant == "redis2" else variant
    count = 2 if variant == "redis2" else 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    data = workdir / f"{variant}-{next(RUNS)}"
    data.mkdir(parents=True, exist_ok=True)
    env.update(
        LIVECOMMERCE_DATA_DIR=str(data),
        LIVECOMMERCE_SECRET_KEY=SECRET,
        LIVECOMMERCE_LOG_LEVEL="warning",
        # Every simulated viewer connects from this one machine (as guests, by address).
        LIVECOMMERCE_ROOM_GUEST_SOCKETS_PER_ADDRESS="1000000",
        PYTHONPATH=str(ROOT),
    )
    if variant == "redis2":
        import redis

        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        client.close()
        env["LIVECOMMERCE_REDIS_URL"] = redis_url
    if kind == "livecommerce":
        subprocess.run(
            [PYTHON, "-m", "livecommerce.cli", "migrate"], env=env, check=True, capture_output=True
        )
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for n in range(count):
            port = free_port()
            log = data / f"server-{n}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [PYTHON, str(SERVERS), kind, "--port", str(port)],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
            procs.append(proc)
            ports.append(port)
            await wait_listening(port, proc, log)
        deployment = Deployment(variant, ports, [p.pid for p in procs])
        if kind == "livecommerce":
            await prepare_stream(deployment)
        yield deployment
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


async def prepare_stream(deployment: Deployment) -> None:
    """A merchant, a live stream and a guest token, through the public API."""
    base = f"http://127.0.0.1:{deployment.ports[0]}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        email = "host@fanout.bench"
        password = "fanout-bench-password"
        registered = await http.post(
            "/api/v1/auth/register",
            json={"email": email, "password": password, "display_name": "Host", "role": "merchant"},
        )
        registered.raise_for_status()
        token = await http.post(
            "/api/v1/auth/token", data={"username": email, "password": password}
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        title = {"kk": "Эфир", "ru": "Эфир", "uz": "Efir"}
        created = await http.post("/api/v1/streams", json={"title": title}, headers=headers)
        created.raise_for_status()
        deployment.stream_id = int(created.json()["id"])
        started = await http.post(f"/api/v1/streams/{deployment.stream_id}/start", headers=headers)
        started.raise_for_status()
        guest = await http.post("/api/v1/auth/guest")
        guest.raise_for_status()
        deployment.token = str(guest.json()["access_token"])


# --- one measurement ----------------------------------------------------------------------


@dataclass
class Run:
    frames: int
    expected: int
    cpu_s: float
    sys_s: float
    client_cpu_s: float
    wall_s: float
    p50_ms: float
    p99_ms: float


def percentile(values: array, q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def measure(
    deployment: Deployment, tally: Tally, viewers: int, count: int, rate: float, grace_s: float
) -> Run:
    tally.reset()
    expected = count * viewers
    (user0, sys0), client0 = cpu_seconds(deployment.pids), client_cpu()
    wall0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=None) as http:
        publish = asyncio.create_task(http.post(deployment.publish_url(count, rate)))
        deadline = time.perf_counter() + (count / rate if rate else 0) + grace_s
        while tally.frames < expected and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        response = await publish
        response.raise_for_status()
    wall = time.perf_counter() - wall0
    user1, sys1 = cpu_seconds(deployment.pids)
    return Run(
        tally.frames,
        expected,
        user1 - user0 + sys1 - sys0,
        sys1 - sys0,
        client_cpu() - client0,
        wall,
        percentile(tally.latencies, 0.5),
        percentile(tally.latencies, 0.99),
    )


@dataclass
class Result:
    variant: str
    viewers: int
    kib_per_conn: float
    paced_rate: float
    paced: Run
    latency: Run | None
    burst: Run


async def bench_one(variant: str, viewers: int, args: argparse.Namespace, workdir: Path) -> Result:
    async with deployed(variant, workdir, args.redis_url) as deployment:
        await asyncio.sleep(1.0)
        rss0 = rss_bytes(deployment.pids)
        tally = Tally()
        targets = [
            (deployment.ports[n % len(deployment.ports)], deployment.path(LOCALES[n % 3]))
            for n in range(viewers)
        ]
        transports = await open_viewers(targets, tally, socketio=variant == "socketio")
        await asyncio.sleep(2.0)
        kib = (rss_bytes(deployment.pids) - rss0) / viewers / 1024
        # Warm up (first frames, caches), not counted.
        await measure(deployment, tally, viewers, 5, 0, 30)
        rate = max(1.0, round(args.load / viewers))
        paced = await measure(
            deployment, tally, viewers, int(rate * args.seconds), rate, args.seconds + 30
        )
        latency = None
        if viewers in args.latency_at:
            latency = await measure(
                deployment, tally, viewers, int(100 * args.seconds), 100, args.seconds + 60
            )
        burst_events = max(10, args.burst_frames // viewers)
        burst = await measure(deployment, tally, viewers, burst_events, 0, 180)
        for transport in transports:
            transport.abort()
        lost = tally.closed
        if lost:
            print(f"    note: {lost} viewers were disconnected by the server", flush=True)
        return Result(variant, viewers, kib, rate, paced, latency, burst)


def report(result: Result) -> None:
    def run_line(name: str, run: Run, rate: float | None) -> str:
        label = f"{name} {rate:g} ev/s" if rate else f"{name}"
        delivered = f"{run.frames:,}/{run.expected:,}"
        per_cpu = run.frames / run.cpu_s if run.cpu_s else float("inf")
        return (
            f"    {label:<24} delivered {delivered:>23}  {per_cpu:>12,.0f} frames/CPU-s"
            f"  {run.frames / run.wall_s:>11,.0f} frames/s  p50 {run.p50_ms:7.1f} ms"
            f"  p99 {run.p99_ms:7.1f} ms  server cpu {run.cpu_s:6.2f} s"
            f" ({run.sys_s / run.cpu_s if run.cpu_s else 0:.0%} sys)"
            f"  client cpu {run.client_cpu_s:5.2f} s"
        )

    print(
        f"  {result.variant:<13} {result.viewers:>6,} viewers  {result.kib_per_conn:6.1f} KiB/conn"
    )
    print(run_line("paced", result.paced, result.paced_rate))
    if result.latency is not None:
        print(run_line("latency", result.latency, 100))
    print(run_line(f"burst of {result.burst.expected // result.viewers}", result.burst, None))
    sys.stdout.flush()


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


async def main_async(args: argparse.Namespace) -> None:
    print(f"Fan-out benchmark on {machine()}")
    print(
        f"load {args.load:,} frames/s (paced), {args.seconds:g} s runs, "
        f"bursts of {args.burst_frames:,} frames, "
        f"latency run at 100 ev/s for {sorted(args.latency_at)} viewers"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="lc-fanout-") as tmp:
        for viewers in args.viewers:
            for variant in args.variants:
                try:
                    result = await bench_one(variant, viewers, args, Path(tmp))
                except Exception as exc:  # report and go on with the other servers
                    print(f"  {variant:<13} {viewers:>6,} viewers  failed: {exc!r}", flush=True)
                    continue
                results.append(result)
                report(result)
    summary(results)


def summary(results: list[Result]) -> None:
    print("\nRatios of livecommerce (one process) to the others, paced frames per CPU-second:")
    by_key = {(r.variant, r.viewers): r for r in results}
    for viewers in sorted({r.viewers for r in results}):
        ours = by_key.get(("livecommerce", viewers))
        if ours is None:
            continue
        mine = ours.paced.frames / ours.paced.cpu_s
        parts = []
        for other in ("ceiling", "naive", "socketio", "redis2"):
            theirs = by_key.get((other, viewers))
            if theirs is not None and theirs.paced.cpu_s:
                parts.append(f"{mine / (theirs.paced.frames / theirs.paced.cpu_s):.2f}x {other}")
        burst = ours.burst.frames / ours.burst.cpu_s if ours.burst.cpu_s else float("inf")
        print(
            f"  {viewers:>6,} viewers: " + ", ".join(parts) + f"; burst {burst:,.0f} events/CPU-s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="1000,5000,10000")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--load", type=int, default=50_000, help="paced frames per second")
    parser.add_argument("--latency-at", default="5000")
    parser.add_argument(
        "--burst-frames", type=int, default=1_000_000, help="events x viewers in the burst"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("LIVECOMMERCE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    )
    args = parser.parse_args()
    args.viewers = [int(v) for v in args.viewers.split(",")]
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")
    args.latency_at = {int(v) for v in args.latency_at.split(",") if v}
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
