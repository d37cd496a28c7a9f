"""Pin herd: a host pins a product and every viewer's page shows its delivery estimate.

Usage (from the repository root)::

    .venv/bin/python bench/pin_herd.py [--viewers 1000,5000] [--signed-in 0.05]
                                       [--seconds 3] [--load 50000] [--requests 300]
                                       [--old-commit 435b1be] [--skip-old]

One ``livecommerce serve`` process (embedded SQLite, its own scratch data directory and free
port) per variant; this process opens the viewers over real sockets with bench/fanout.py's
small WebSocket client, spread evenly over five cities (Almaty kk, Astana ru, Tashkent uz,
Samarkand uz, Moscow ru). A share of the Uzbek viewers (``--signed-in``, of all viewers) are
signed-in buyers who already imported this month, so their customs allowance is their own.
The host pins through ``POST /streams/{id}/pins``; each viewer then does what the web client
does to show its estimate:

- ``socket`` (this branch): read the city's estimate from the ``product_pinned`` frame; a
  signed-in viewer under a monthly allowance asks for its own figure with an ``estimate``
  message on its room socket after a random 0-0.25 s, as viewer.js does;
- ``http`` (the same server, the web client before the socket request): the signed-in
  viewer asks ``GET /products/{id}/delivery-estimate`` after a random 0-1.5 s instead;
- ``old`` (the server of ``--old-commit``, extracted with ``git archive`` into the scratch
  directory, and its client): every viewer ``POST /quotes`` at once, on its own keep-alive
  connection (opened before the pin, as a browser's page already has one).

Per variant and size it prints: the time from the pin until 50 / 99 / 100 % of viewers have
their estimate; the server's CPU (user + system from ``/proc/<pid>/stat``) from the pin to
the last estimate, per viewer; then a herd under load: room events posted by the host at
``--load`` frames a second (events/s = load / viewers) for ``--seconds`` with a new pin at
the start, and the frames the viewers received per server CPU-second, beside the same paced
load on bench/fanout_servers.py's raw-socket ceiling server with as many viewers.

Finally the endpoint alone, ``--requests`` sequential requests on one connection (no
viewers): cache hit, cache miss, a 304, a signed-in buyer's personal figure, and a one-unit
``POST /quotes`` for comparison; server CPU and wall time per request.

The script prints figures only; it never judges them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import random
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote as urlquote

import httpx
from fanout import (
    ROOT,
    Tally,
    Viewer,
    client_cpu,
    cpu_seconds,
    deployed,
    free_port,
    handshake,
    measure,
    open_viewers,
    percentile,
    wait_listening,
)
from flash_sale import RawDriver

PYTHON = sys.executable
SECRET = "pin-herd-benchmark-secret-key-not-for-production"
PASSWORD = "pin-herd-password"
CITIES = (  # (country, city as the page keeps it, locale)
    ("KZ", "Алматы", "kk"),
    ("KZ", "Астана", "ru"),
    ("UZ", "Toshkent", "uz"),
    ("UZ", "Samarqand", "uz"),
    ("RU", "Москва", "ru"),
)
CURRENCY = {"kk": "KZT", "ru": "RUB", "uz": "UZS"}
SPREAD_S = {"socket": 0.25, "http": 1.5}  # viewer.js ESTIMATE_SPREAD_MS
TASHKENT = {
    "country": "UZ",
    "city": "Tashkent",
    "postal_code": "100000",
    "address_line1": "Amir Temur 1",
    "recipient_name": "Dilnoza Karimova",
    "phone": "+998 90 123 45 67",
}


def fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# --- the viewers ----------------------------------------------------------------------------


@dataclass
class Spec:
    country: str
    city: str
    locale: str
    token: str | None  # a signed-in buyer's token; guests' pages send none to the API
    conn: int | None = None  # index of its keep-alive HTTP connection


@dataclass
class Herd:
    """One pin's herd: who has their estimate, when."""

    mode: str  # "socket", "http" or "old"
    base: str
    driver: RawDriver
    product_id: int = 0
    t_pin: float = 0.0
    done: array = field(default_factory=lambda: array("d"))  # the final figure
    shown: array = field(default_factory=lambda: array("d"))  # the first figure on the page
    requests: int = 0
    failures: int = 0
    frames: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self, product_id: int) -> None:
        self.product_id, self.t_pin = product_id, time.perf_counter()
        self.done, self.shown = array("d"), array("d")
        self.requests, self.failures = 0, 0

    def on_pin(self, viewer: HerdViewer, spec: Spec, payload: bytes) -> None:
        if self.mode == "old":
            self._spawn(self.post_quote(spec))
            return
        data = json.loads(payload)["data"]
        if not data.get("product") or data["product"]["id"] != self.product_id:
            return
        carried = data.get("estimates") or {"destinations": []}
        city = fold(spec.city)
        found = next(
            (
                d
                for d in carried["destinations"]
                if d["country"] == spec.country and city in d["match"]
            ),
            None,
        )
        if found is not None:
            # viewer.js shows the carried figure at once, then refines a signed-in buyer's.
            self.shown.append(time.perf_counter() - self.t_pin)
            if not (found["monthly_allowance"] and spec.token):
                self.done.append(self.shown[-1])
                return
        if self.mode == "socket":
            self._spawn(self.ask_room(viewer, spec, random.uniform(0, SPREAD_S["socket"])))
        else:
            self._spawn(self.get_estimate(spec, random.uniform(0, SPREAD_S["http"])))

    async def ask_room(self, viewer: HerdViewer, spec: Spec, delay: float) -> None:
        await asyncio.sleep(delay)
        ask = {"product_id": self.product_id, "country": spec.country, "city": spec.city}
        self.requests += 1
        assert viewer.transport is not None
        viewer.transport.write(client_frame(json.dumps({"type": "estimate", "data": ask})))

    def on_answer(self, payload: bytes) -> None:
        """An ``estimate`` (or ``error``) frame answering ``ask_room``."""
        if not payload.startswith(b'{"type":"estimate"'):
            self.failures += 1
        self.done.append(time.perf_counter() - self.t_pin)

    def _spawn(self, job: Any) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _head(self, method: str, path: str, spec: Spec, extra: str = "") -> str:
        auth = f"Authorization: Bearer {spec.token}\r\n" if spec.token else ""
        return f"{method} {path} HTTP/1.1\r\nHost: {self.base}\r\n{auth}{extra}"

    async def _send(self, spec: Spec, payload: bytes) -> None:
        assert spec.conn is not None
        self.requests += 1
        try:
            status, _ = await self.driver._roundtrip(spec.conn, payload)
        except (ConnectionError, asyncio.IncompleteReadError):
            # The server closed the idle keep-alive connection; a browser opens another.
            host, port = self.base.split(":")
            try:
                self.driver.streams[spec.conn] = await asyncio.open_connection(host, int(port))
                status, _ = await self.driver._roundtrip(spec.conn, payload)
            except (ConnectionError, asyncio.IncompleteReadError):
                status = 0  # the server dropped the request: a failure the page would show
        if status != 200:
            self.failures += 1
        self.done.append(time.perf_counter() - self.t_pin)
        if self.mode == "old":
            self.shown.append(self.done[-1])

    async def get_estimate(self, spec: Spec, delay: float) -> None:
        await asyncio.sleep(delay)
        query = (
            f"country={spec.country}&city={urlquote(spec.city)}"
            f"&locale={spec.locale}&currency={CURRENCY[spec.locale]}"
        )
        path = f"/api/v1/products/{self.product_id}/delivery-estimate?{query}"
        await self._send(spec, (self._head("GET", path, spec) + "\r\n").encode())

    async def post_quote(self, spec: Spec) -> None:
        body = json.dumps(
            {
                "items": [{"product_id": self.product_id, "quantity": 1}],
                "ship_to": {"country": spec.country, "city": spec.city},
            }
        ).encode()
        path = f"/api/v1/quotes?locale={spec.locale}&currency={CURRENCY[spec.locale]}"
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        await self._send(spec, (self._head("POST", path, spec, extra) + "\r\n").encode() + body)


def client_frame(text: str) -> bytes:
    """A masked text frame, as a browser sends it."""
    payload, key = text.encode(), os.urandom(4)
    size = len(payload)
    head = bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0xFE]) + size.to_bytes(2)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class HerdViewer(Viewer):
    def __init__(self, request: bytes, tally: Tally, herd: Herd, spec: Spec) -> None:
        super().__init__(request, tally, socketio=False)
        self.herd, self.spec = herd, spec

    def on_frame(self, payload: bytes) -> None:
        self.herd.frames += 1
        head = payload[:40]
        if b'"type":"product_pinned"' in head:
            self.herd.on_pin(self, self.spec, payload)
        elif b'"type":"estimate"' in head or b'"type":"error"' in head:
            self.herd.on_answer(payload)


async def open_herd(
    port: int, stream_id: int, guest: str, specs: list[Spec], herd: Herd, tally: Tally
) -> list[asyncio.Transport]:
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    for first in range(0, len(specs), 200):
        chunk = specs[first : first + 200]
        made = await asyncio.gather(
            *(
                loop.create_connection(
                    partial(
                        HerdViewer,
                        handshake(
                            port,
                            f"/ws/streams/{stream_id}?token={s.token or guest}"
                            f"&locale={s.locale}&currency={CURRENCY[s.locale]}",
                        ),
                        tally,
                        herd,
                        s,
                    ),
                    "127.0.0.1",
                    port,
                )
                for s in chunk
            )
        )
        transports.extend(t for t, _ in made)
        async with asyncio.timeout(60):
            while tally.ready < len(transports):
                await asyncio.sleep(0.01)
    return transports


# --- the server -------------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    pid: int
    base_url: str


@contextlib.asynccontextmanager
async def serve(tree: Path, data: Path, kind: str = "serve") -> AsyncIterator[Server]:
    """``serve``: ``livecommerce serve``. ``bench``: the same application with bench/fanout.py's
    in-process paced publisher (``POST /bench/publish``), for the load run."""
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    env.update(
        LIVECOMMERCE_DATA_DIR=str(data),
        LIVECOMMERCE_SECRET_KEY=SECRET,
        LIVECOMMERCE_LOG_LEVEL="warning",
        # Every simulated viewer connects from this one machine (as guests, by address).
        LIVECOMMERCE_ROOM_GUEST_SOCKETS_PER_ADDRESS="1000000",
        LIVECOMMERCE_HOST="127.0.0.1",
        LIVECOMMERCE_PORT=str(port),
        PYTHONPATH=str(tree),
    )
    cli = [PYTHON, "-m", "livecommerce.cli"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, cwd=tree)
    log = data / "server.log"
    with log.open("wb") as out:
        argv = [*cli, "serve"]
        if kind == "bench":
            argv = [PYTHON, str(ROOT / "bench" / "fanout_servers.py"), "livecommerce"]
            argv += ["--port", str(port)]
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tree)
    try:
        await wait_listening(port, proc, log)
        yield Server(port, proc.pid, f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def old_tree(commit: str, workdir: Path) -> Path:
    """The server as it was at ``commit``, extracted (no checkout, no other worktree)."""
    target = workdir / f"tree-{commit}"
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "livecommerce", "locales"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


@dataclass
class Shop:
    stream_id: int
    host: dict[str, str]
    merchant: dict[str, str]
    guest: str
    buyers: list[str]  # tokens of signed-in Uzbek buyers with a parcel this month
    products: list[int]


async def register(http: httpx.AsyncClient, email: str, role: str, **extra: str) -> str:
    made = await http.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": email, "role": role, **extra},
    )
    made.raise_for_status()
    token = await http.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    token.raise_for_status()
    return str(token.json()["access_token"])


async def product(http: httpx.AsyncClient, merchant: dict[str, str], n: int) -> int:
    body = {
        "sku": f"HERD-{n}",
        "title": {"ru": "Сумка", "kk": "Сөмке", "uz": "Sumka", "en": "Bag", "zh": "包"},
        "description": {"en": "A leather bag"},
        "price": {"amount": "150.00", "currency": "EUR"},
        "weight_grams": 2000,
        "hs_code": "420221",
        "origin_country": "IT",
        "image_urls": [],
    }
    made = await http.post("/api/v1/products", json=body, headers=merchant)
    made.raise_for_status()
    pid = int(made.json()["id"])
    for code in ("DEDUI", "KZALA"):
        put = await http.put(
            f"/api/v1/products/{pid}/stock/{code}", json={"quantity": 100000}, headers=merchant
        )
        put.raise_for_status()
    return pid


async def prepare(base_url: str, products: int, buyers: int) -> Shop:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        token = await register(http, "merchant@herd.bench", "merchant", currency="EUR")
        merchant = {"Authorization": f"Bearer {token}"}
        ids = [await product(http, merchant, n) for n in range(products)]
        tokens = []
        for n in range(buyers):
            buyer = await register(http, f"buyer{n}@herd.bench", "viewer", locale="uz")
            placed = await http.post(
                "/api/v1/orders",
                json={
                    "items": [{"product_id": ids[0], "quantity": 1}],
                    "ship_to": TASHKENT,
                    "payment_method": "cod",
                },
                headers={"Authorization": f"Bearer {buyer}"},
            )
            placed.raise_for_status()
            tokens.append(buyer)
        title = {"kk": "Эфир", "ru": "Эфир", "uz": "Efir"}
        created = await http.post("/api/v1/streams", json={"title": title}, headers=merchant)
        created.raise_for_status()
        sid = int(created.json()["id"])
        (await http.post(f"/api/v1/streams/{sid}/start", headers=merchant)).raise_for_status()
        guest = (await http.post("/api/v1/auth/guest")).json()["access_token"]
        return Shop(sid, merchant, merchant, str(guest), tokens, ids)


# --- measurements --------------------------------------------------------------------------


@dataclass
class HerdRun:
    viewers: int
    got: int
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    p100_ms: float
    cpu_s: float
    client_cpu_s: float
    shown_p50_ms: float
    shown_p99_ms: float


async def pin(http: httpx.AsyncClient, shop: Shop, product_id: int) -> None:
    pinned = await http.post(
        f"/api/v1/streams/{shop.stream_id}/pins",
        json={"product_id": product_id},
        headers=shop.host,
    )
    pinned.raise_for_status()


async def wait_done(herd: Herd, viewers: int, timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while (len(herd.done) < viewers or herd.tasks) and time.perf_counter() < deadline:
        await asyncio.sleep(0.002)


async def one_herd(
    server: Server, shop: Shop, herd: Herd, product_id: int, viewers: int
) -> HerdRun:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
        (u0, s0), c0 = cpu_seconds([server.pid]), client_cpu()
        herd.start(product_id)
        await pin(http, shop, product_id)
        await wait_done(herd, viewers, 180)
        u1, s1 = cpu_seconds([server.pid])
    return HerdRun(
        viewers,
        len(herd.done),
        herd.requests,
        herd.failures,
        percentile(herd.done, 0.5),
        percentile(herd.done, 0.99),
        max(herd.done) * 1000 if herd.done else float("nan"),
        u1 - u0 + s1 - s0,
        client_cpu() - c0,
        percentile(herd.shown, 0.5),
        percentile(herd.shown, 0.99),
    )


@dataclass
class LoadRun:
    frames: int
    expected: int
    cpu_s: float
    wall_s: float
    herd_p99_ms: float
    failed_events: int = 0  # room events the host's REST call could not publish

    @property
    def per_cpu(self) -> float:
        return self.frames / self.cpu_s if self.cpu_s else float("nan")


async def herd_under_load(
    server: Server,
    shop: Shop,
    herd: Herd,
    tally: Tally,
    product_id: int,
    viewers: int,
    rate: float,
    seconds: float,
) -> LoadRun:
    """Room events at ``rate`` per second for ``seconds`` (published in the server, as
    bench/fanout.py does), and a pin at the start."""
    events = int(rate * seconds)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as http:
        herd.frames, tally.frames = 0, 0
        (u0, s0), wall0 = cpu_seconds([server.pid]), time.perf_counter()
        publish = asyncio.create_task(
            http.post(f"/bench/publish?count={events}&rate={rate}&stream_id={shop.stream_id}")
        )
        herd.start(product_id)
        await pin(http, shop, product_id)
        (await publish).raise_for_status()
        expected = (events + 1) * viewers
        deadline = time.perf_counter() + 60
        while (
            tally.frames + herd.frames < expected or herd.tasks
        ) and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        u1, s1 = cpu_seconds([server.pid])
    return LoadRun(
        tally.frames + herd.frames,
        expected,
        u1 - u0 + s1 - s0,
        time.perf_counter() - wall0,
        percentile(herd.done, 0.99),
    )


async def ceiling_load(viewers: int, rate: float, seconds: float, workdir: Path) -> LoadRun:
    async with deployed("ceiling", workdir, "") as deployment:
        tally = Tally()
        targets = [(deployment.ports[0], deployment.path(CITIES[n % 5][2])) for n in range(viewers)]
        transports = await open_viewers(targets, tally, socketio=False)
        await asyncio.sleep(1.0)
        await measure(deployment, tally, viewers, 3, 0, 30)  # warm-up
        run = await measure(deployment, tally, viewers, int(rate * seconds), rate, seconds + 30)
        for transport in transports:
            transport.abort()
    return LoadRun(run.frames, run.expected, run.cpu_s, run.wall_s, float("nan"))


def viewer_specs(viewers: int, shop: Shop, signed_in: float) -> list[Spec]:
    specs = [Spec(*CITIES[n % 5], token=None) for n in range(viewers)]
    uzbek = [s for s in specs if s.country == "UZ"]
    for n, spec in enumerate(uzbek[: round(signed_in * viewers)]):
        spec.token = shop.buyers[n % len(shop.buyers)]
    return specs


@dataclass
class Variant:
    name: str
    herd: HerdRun
    load: LoadRun


@contextlib.asynccontextmanager
async def room(
    name: str, tree: Path, viewers: int, args: argparse.Namespace, data: Path, kind: str
) -> AsyncIterator[tuple[Server, Shop, Herd, Tally]]:
    """A server with a live stream, ``viewers`` connected, and their HTTP connections."""
    async with serve(tree, data, kind) as server:
        shop = await prepare(server.base_url, products=4, buyers=args.buyers)
        specs = viewer_specs(viewers, shop, args.signed_in)
        driver = RawDriver()
        herd = Herd(name, f"127.0.0.1:{server.port}", driver)
        needs_http = [s for s in specs if name != "socket" and (name == "old" or s.token)]
        await driver.open(server.base_url, len(needs_http))
        for n, spec in enumerate(needs_http):
            spec.conn = n
        tally = Tally()
        transports = await open_herd(server.port, shop.stream_id, shop.guest, specs, herd, tally)
        await asyncio.sleep(2.0)
        await one_herd(server, shop, herd, shop.products[1], viewers)  # warm-up, not counted
        await asyncio.sleep(1.0)
        try:
            yield server, shop, herd, tally
        finally:
            lost = tally.closed
            for transport in transports:
                transport.abort()
            await driver.close()
            if lost > 0:
                print(f"    note: {lost} viewers were disconnected by the server", flush=True)


async def run_variant(
    name: str, tree: Path, viewers: int, args: argparse.Namespace, workdir: Path
) -> Variant:
    data = workdir / f"{name}-{viewers}"
    async with room(name, tree, viewers, args, data, "serve") as (server, shop, herd, _):
        run = await one_herd(server, shop, herd, shop.products[2], viewers)
    rate = max(1.0, round(args.load / viewers))
    async with room(name, tree, viewers, args, data / "load", "bench") as (
        server,
        shop,
        herd,
        tally,
    ):
        load = await herd_under_load(
            server, shop, herd, tally, shop.products[3], viewers, rate, args.seconds
        )
    return Variant(name, run, load)


# --- the endpoint alone -------------------------------------------------------------------


async def endpoint_alone(
    args: argparse.Namespace, workdir: Path
) -> list[tuple[str, int, float, float]]:
    rows = []
    async with serve(ROOT, workdir / "endpoint") as server:
        shop = await prepare(server.base_url, products=2 + args.requests // 5, buyers=1)
        driver = RawDriver()
        await driver.open(server.base_url, 1)
        host = f"127.0.0.1:{server.port}"
        pid = shop.products[1]

        def get(path: str, headers: str = "") -> bytes:
            return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode()

        def estimate_path(product_id: int, country: str, city: str, locale: str) -> str:
            return (
                f"/api/v1/products/{product_id}/delivery-estimate?country={country}"
                f"&city={urlquote(city)}&locale={locale}&currency={CURRENCY[locale]}"
            )

        hit = get(estimate_path(pid, "KZ", "Алматы", "kk"))
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            first = await http.get(estimate_path(pid, "KZ", "Алматы", "kk"))
            etag = first.headers["etag"]
        misses = [
            get(estimate_path(p, c, city, loc))
            for p in shop.products[2:]
            for c, city, loc in CITIES
        ][: args.requests]
        buyer = f"Authorization: Bearer {shop.buyers[0]}\r\n"
        quote_body = json.dumps(
            {
                "items": [{"product_id": pid, "quantity": 1}],
                "ship_to": {"country": "KZ", "city": "Алматы"},
            }
        ).encode()
        quote = (
            f"POST /api/v1/quotes?locale=kk&currency=KZT HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(quote_body)}\r\n\r\n"
        ).encode() + quote_body
        cases = [
            ("estimate, cache hit", [hit] * args.requests),
            ("estimate, cache miss", misses),
            (
                "estimate, 304 (If-None-Match)",
                [get(estimate_path(pid, "KZ", "Алматы", "kk"), f"If-None-Match: {etag}\r\n")]
                * args.requests,
            ),
            (
                "estimate, signed-in Uzbek buyer",
                [get(estimate_path(pid, "UZ", "Toshkent", "uz"), buyer)] * args.requests,
            ),
            ("POST /quotes, one unit", [quote] * args.requests),
        ]
        for name, payloads in cases:
            await driver._roundtrip(0, payloads[0])  # warm-up, not counted
            measured = payloads[1:]
            (u0, s0), t0 = cpu_seconds([server.pid]), time.perf_counter()
            for payload in measured:
                status, _ = await driver._roundtrip(0, payload)
                assert status in (200, 304), (name, status)
            u1, s1 = cpu_seconds([server.pid])
            wall = time.perf_counter() - t0
            rows.append(
                (
                    name,
                    len(measured),
                    (u1 - u0 + s1 - s0) * 1000 / len(measured),
                    wall * 1000 / len(measured),
                )
            )
        await driver.close()
    return rows


# --- report -------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs, {cpu}; "
        f"Python {platform.python_version()}; {platform.system()} {platform.release()}"
    )


def ms(value: float) -> str:
    return f"{value:,.0f}" if value == value else "-"


async def main_async(args: argparse.Namespace) -> None:
    sizes = [int(v) for v in args.viewers.split(",")]
    print(f"# pin herd: {machine()}", flush=True)
    print(
        f"# signed-in Uzbek buyers: {args.signed_in:.0%} of viewers; "
        f"load {args.load:,} frames/s for {args.seconds} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="pin-herd-") as tmp:
        workdir = Path(tmp)
        trees = [("socket", ROOT), ("http", ROOT)]
        if not args.skip_old:
            trees.append(("old", old_tree(args.old_commit, workdir)))
        results: dict[int, list[Variant]] = {}
        ceilings: dict[int, LoadRun] = {}
        for viewers in sizes:
            for name, tree in trees:
                print(f"## {viewers:,} viewers, {name}", flush=True)
                variant = await run_variant(name, tree, viewers, args, workdir)
                results.setdefault(viewers, []).append(variant)
                print(f"   {variant}", flush=True)
            rate = max(1.0, round(args.load / viewers))
            print(f"## {viewers:,} viewers, ceiling", flush=True)
            ceilings[viewers] = await ceiling_load(viewers, rate, args.seconds, workdir)
            print(f"   {ceilings[viewers]}", flush=True)
        rows = await endpoint_alone(args, workdir) if args.requests else []

    print()
    print(
        "| viewers | client | requests | first figure shown 50 % / 99 % (ms) "
        "| final figure 50 % / 99 % / 100 % (ms) | server CPU | CPU per viewer | got |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for viewers, variants in results.items():
        for v in variants:
            h = v.herd
            kind = {
                "socket": "pin frame (+ socket request, 0-0.25 s)",
                "http": "pin frame (+ endpoint, 0-1.5 s)",
            }.get(v.name, "POST /quotes at once")
            print(
                f"| {viewers:,} | {v.name}: {kind} | {h.requests:,} ({h.failures} failed) | "
                f"{ms(h.shown_p50_ms)} / {ms(h.shown_p99_ms)} | "
                f"{ms(h.p50_ms)} / {ms(h.p99_ms)} / {ms(h.p100_ms)} | {h.cpu_s:.2f} s | "
                f"{h.cpu_s * 1000 / viewers:.3f} ms | {h.got:,} |"
            )
    print()
    print(
        "| viewers | server | frames delivered / expected | server CPU | frames/CPU-s "
        "| vs ceiling | herd p99 ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for viewers, variants in results.items():
        ceiling = ceilings[viewers]
        print(
            f"| {viewers:,} | ceiling (no herd) | {ceiling.frames:,} / {ceiling.expected:,} | "
            f"{ceiling.cpu_s:.2f} s | {ceiling.per_cpu:,.0f} | 1.00x | - |"
        )
        for v in variants:
            load = v.load
            print(
                f"| {viewers:,} | {v.name} | {load.frames:,} / {load.expected:,} "
                f"| {load.cpu_s:.2f} s | {load.per_cpu:,.0f} "
                f"| {load.per_cpu / ceiling.per_cpu:.2f}x | {ms(load.herd_p99_ms)} |"
                + (f" {load.failed_events} events failed" if load.failed_events else "")
            )
    print()
    print("| request (sequential, one connection) | n | server CPU ms/request | wall ms/request |")
    print("|---|---|---|---|")
    for name, n, cpu_ms, wall_ms in rows:
        print(f"| {name} | {n} | {cpu_ms:.2f} | {wall_ms:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="1000,5000")
    parser.add_argument("--signed-in", type=float, default=0.05, help="share of all viewers")
    parser.add_argument("--buyers", type=int, default=10, help="signed-in accounts to spread over")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--load", type=int, default=50_000, help="frames/s during the load run")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--old-commit", default="435b1be")
    parser.add_argument("--skip-old", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
