"""Fulfilment benchmark: one Celery worker turning orders into declared, booked parcels, and
the time from a payment webhook to the first tracking scan.

Usage (from the repository root)::

    .venv/bin/python bench/fulfilment.py [--orders 400] [--latency-orders 40]
        [--poll-seconds 0.5] [--admin-dsn postgresql://postgres@127.0.0.1:5432/test]
        [--database bench_fulfil] [--redis-url redis://127.0.0.1:6379/14]

Everything real: a scratch PostgreSQL database (created through ``--admin-dsn``, dropped at
the end), ``livecommerce serve --no-worker`` as the API, Redis as the Celery broker (a queue
of its own), and ``livecommerce worker`` processes. The sandbox carrier runs with a fast
clock (one transit day = ``--day-seconds``) and without failures, so carrier delays do not
hide the pipeline's own time.

(1) Throughput. With no worker running, ``--orders`` cash-on-delivery orders are placed
through the API (every other one from Duisburg to Tashkent, declared to Uzbek customs with
the monthly allowance counted, the others from Almaty to Almaty, undeclared; each with its
own recipient). Their fulfilment jobs wait in Redis. Then one worker process with one pool
process starts, and the script polls the database: orders fulfilled per second (shipments
and declarations committed) from the worker's first to its last shipment, parcels booked per
second with the carrier, and the worker's CPU seconds (main process and pool child) from
its first shipment on.

(2) Latency. A worker with the scheduler (tracking poll every ``--poll-seconds``) runs while
``--latency-orders`` card orders are paid one after another through the sandbox provider,
whose signed webhook reaches the API over HTTP. Per order, from the database's own
timestamps: webhook applied (order ``paid``) -> shipments created -> parcel booked -> first
scan stored. The last step waits for the next tracking poll, so it is bounded by the poll
interval; a carrier that pushes webhooks would remove that wait.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import flash_sale as fs

TEST_CARD = "4242424242424242"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def job_env(database_url: str, data_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    env = fs.server_env(database_url, data_dir)
    env.update(
        LIVECOMMERCE_BROKER_URL=args.redis_url,
        LIVECOMMERCE_TASK_QUEUE=f"bench-{uuid.uuid4().hex[:8]}",
        LIVECOMMERCE_EMBEDDED_WORKER="false",
        LIVECOMMERCE_CARRIER_SANDBOX_DAY_SECONDS=str(args.day_seconds),
        LIVECOMMERCE_CARRIER_SANDBOX_FAILURE_RATE="0",
        LIVECOMMERCE_CARRIER_SANDBOX_HOLD_RATE="0.1",
        LIVECOMMERCE_CARRIER_SANDBOX_DELAY_RATE="0.1",
        LIVECOMMERCE_TRACKING_POLL_SECONDS=str(args.poll_seconds),
        LIVECOMMERCE_RECONCILE_SECONDS="3600",
    )
    return env


class Worker:
    def __init__(self, env: dict[str, str], log_path: Path, *, beat: bool) -> None:
        argv = [fs.PYTHON, "-m", "livecommerce.cli", "worker", "--loglevel=warning"]
        if beat:
            argv.append("--beat")
        self.log_path = log_path
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=fs.ROOT, stdout=out, stderr=subprocess.STDOUT
            )

    def cpu_seconds(self) -> float:
        """The worker's own CPU time plus that of its pool processes."""
        total = 0.0
        for pid in [self.proc.pid, *children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / fs.CLK_TCK
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


async def account(http: httpx.AsyncClient, role: str) -> dict[str, str]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@fulfil.bench"
    password = "bench-password-123"
    body = {"email": email, "password": password, "display_name": role.title(), "role": role}
    created = await http.post("/api/v1/auth/register", json=body)
    created.raise_for_status()
    token = await http.post("/api/v1/auth/token", data={"username": email, "password": password})
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def product(http: httpx.AsyncClient, headers: dict[str, str], **stock: int) -> int:
    body = {
        "sku": f"BENCH-{uuid.uuid4().hex[:10]}",
        "title": {"ru": "Шарф из шерсти", "en": "Wool scarf", "kk": "Жүн шарф"},
        "price": {"amount": "90.00", "currency": "EUR"},
        "weight_grams": 400,
        "hs_code": "611710",
        "origin_country": "IT",
    }
    created = await http.post("/api/v1/products", json=body, headers=headers)
    created.raise_for_status()
    pid = int(created.json()["id"])
    for code, quantity in stock.items():
        put = await http.put(
            f"/api/v1/products/{pid}/stock/{code}", json={"quantity": quantity}, headers=headers
        )
        put.raise_for_status()
    return pid


def ship_to(n: int, tashkent: bool) -> dict[str, str]:
    return {
        "country": "UZ" if tashkent else "KZ",
        "city": "Tashkent" if tashkent else "Almaty",
        "postal_code": "100000" if tashkent else "050000",
        "address_line1": f"Street {n}",
        "recipient_name": f"Recipient {n}",
        "phone": f"+998 90 {n:07d}" if tashkent else f"+7 701 {n:07d}",
    }


async def place_orders(
    http: httpx.AsyncClient, buyer: dict[str, str], items: list[tuple[int, bool]], method: str
) -> list[int]:
    gate = asyncio.Semaphore(8)

    async def one(n: int, pid: int, tashkent: bool) -> int:
        async with gate:
            body = {
                "items": [{"product_id": pid, "quantity": 1}],
                "ship_to": ship_to(n, tashkent),
                "payment_method": method,
            }
            response = await http.post("/api/v1/orders", json=body, headers=buyer)
            if response.status_code != 201:
                raise RuntimeError(f"order refused: {response.status_code} {response.text}")
            return int(response.json()["id"])

    return list(await asyncio.gather(*(one(n, p, t) for n, (p, t) in enumerate(items))))


async def throughput(
    args: argparse.Namespace, env: dict[str, str], dsn: str, base: str, work: Path
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        merchant = await account(http, "merchant")
        buyer = await account(http, "viewer")
        from_dedui = await product(http, merchant, DEDUI=args.orders)
        from_kzala = await product(http, merchant, KZALA=args.orders)
        log(f"placing {args.orders} cash-on-delivery orders (jobs wait in Redis)")
        items = [
            (from_dedui, True) if n % 2 == 0 else (from_kzala, False) for n in range(args.orders)
        ]
        order_ids = await place_orders(http, buyer, items, "cod")
    conn = await asyncpg.connect(dsn)
    try:
        log("starting one worker (one pool process)")
        worker = Worker(env, work / "worker-throughput.log", beat=False)
        try:
            deadline = time.monotonic() + 600
            made = booked = 0
            cpu_at_start: float | None = None
            while time.monotonic() < deadline:
                made = await conn.fetchval(
                    "SELECT count(DISTINCT order_id) FROM shipments WHERE order_id = ANY($1)",
                    order_ids,
                )
                booked = await conn.fetchval(
                    "SELECT count(*) FROM shipments WHERE order_id = ANY($1) "
                    "AND tracking_number IS NOT NULL",
                    order_ids,
                )
                if made and cpu_at_start is None:
                    # Start-up (imports, connections) is not per-order work.
                    cpu_at_start = worker.cpu_seconds()
                if made == len(order_ids) and booked >= made:
                    break
                if worker.proc.poll() is not None:
                    raise RuntimeError(f"worker exited:\n{fs.tail(worker.log_path)}")
                await asyncio.sleep(0.1)
            cpu = worker.cpu_seconds() - (cpu_at_start or 0.0)
        finally:
            worker.stop()
        times = await conn.fetchrow(
            """
            SELECT min(s.created_at) AS first_made, max(s.created_at) AS last_made,
                   min(s.booked_at) AS first_booked, max(s.booked_at) AS last_booked,
                   count(*) AS parcels, count(d.id) AS declared
            FROM shipments s LEFT JOIN customs_declarations d ON d.shipment_id = s.id
            WHERE s.order_id = ANY($1)
            """,
            order_ids,
        )
    finally:
        await conn.close()
    if made != len(order_ids):
        raise RuntimeError(f"only {made} of {len(order_ids)} orders fulfilled in time")
    make_s = (times["last_made"] - times["first_made"]).total_seconds()
    book_s = (times["last_booked"] - times["first_booked"]).total_seconds()
    return {
        "orders": len(order_ids),
        "parcels": int(times["parcels"]),
        "declared": int(times["declared"]),
        "fulfil_per_s": (len(order_ids) - 1) / make_s if make_s else float("nan"),
        "book_per_s": (int(times["parcels"]) - 1) / book_s if book_s else float("nan"),
        "worker_cpu_s": cpu,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def latency(
    args: argparse.Namespace, env: dict[str, str], dsn: str, base: str, work: Path
) -> dict[str, list[float]]:
    worker = Worker(env, work / "worker-latency.log", beat=True)
    conn = await asyncpg.connect(dsn)
    stages: dict[str, list[float]] = {"shipments": [], "booked": [], "first_scan": []}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            merchant = await account(http, "merchant")
            buyer = await account(http, "viewer")
            pid = await product(http, merchant, KZALA=args.latency_orders + 1)
            log(f"paying 1 + {args.latency_orders} card orders one after another")
            # The first, not counted, waits for the worker and its scheduler to come up.
            for n in range(-1, args.latency_orders):
                [oid] = await place_orders(http, buyer, [(pid, False)], "card")
                paid = await http.post(f"/api/v1/orders/{oid}/payments", headers=buyer)
                paid.raise_for_status()
                intent = paid.json()
                confirm = await http.post(
                    intent["confirm_url"],
                    json={
                        "client_secret": intent["client_secret"],
                        "card_number": "4242424242424242",
                    },
                )
                confirm.raise_for_status()
                deadline = time.monotonic() + 60
                row = None
                while time.monotonic() < deadline:
                    row = await conn.fetchrow(
                        """
                        SELECT (SELECT at FROM order_events
                                WHERE order_id = $1 AND to_status = 'paid') AS paid_at,
                               s.created_at, s.booked_at,
                               (SELECT min(received_at) FROM tracking_events t
                                WHERE t.shipment_id = s.id) AS first_scan
                        FROM shipments s WHERE s.order_id = $1
                        """,
                        oid,
                    )
                    if row is not None and row["first_scan"] is not None:
                        break
                    await asyncio.sleep(0.02)
                if row is None or row["first_scan"] is None:
                    raise RuntimeError(f"order {oid}: no scan within 60 s")
                paid_at = row["paid_at"]
                if n < 0:
                    continue
                stages["shipments"].append((row["created_at"] - paid_at).total_seconds())
                stages["booked"].append((row["booked_at"] - paid_at).total_seconds())
                stages["first_scan"].append((row["first_scan"] - paid_at).total_seconds())
                if n % 10 == 9:
                    log(f"  {n + 1} orders")
    finally:
        await conn.close()
        worker.stop()
    return stages


async def main_async(args: argparse.Namespace) -> int:
    pg_version = await fs.create_database(args.admin_dsn, args.database)
    dsn = fs.database_dsn(args.admin_dsn, args.database)
    database_url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    work = Path(tempfile.mkdtemp(prefix="bench-fulfil-"))
    env = job_env(database_url, work, args)
    server = None
    try:
        fs.migrate(env)
        server = fs.spawn(
            "api", [fs.PYTHON, "-m", "livecommerce.cli", "serve", "--no-worker"], env, work
        )
        await fs.wait_healthy(server)
        result = await throughput(args, env, dsn, server.base_url, work)
        stages = await latency(args, env, dsn, server.base_url, work)
    finally:
        if server is not None:
            server.stop()
        await fs.remove_database(args.admin_dsn, args.database)
    for line in fs.machine_lines(pg_version):
        print(line)
    print(
        f"Broker: Redis ({args.redis_url}); sandbox carrier, one transit day = {args.day_seconds} s"
    )
    print()
    print("(1) One worker process, one pool process")
    counts = (result["orders"], result["parcels"], result["declared"])
    print("    orders: {}  parcels: {}  declared: {}".format(*counts))
    print(f"    fulfilled (shipments + declarations): {result['fulfil_per_s']:.1f} orders/s")
    print(f"    booked with the carrier:              {result['book_per_s']:.1f} parcels/s")
    print(
        f"    worker CPU: {result['worker_cpu_s']:.1f} s "
        f"({result['worker_cpu_s'] / result['orders'] * 1000:.1f} ms per order, both jobs)"
    )
    print()
    print(
        f"(2) Payment webhook -> first tracking scan, {args.latency_orders} orders, "
        f"tracking poll every {args.poll_seconds} s"
    )
    print("    stage (from the webhook applied)   p50 ms    p95 ms    max ms")
    for name, label in (
        ("shipments", "shipments + declaration committed"),
        ("booked", "parcel booked with the carrier"),
        ("first_scan", "first tracking scan stored"),
    ):
        values = [v * 1000 for v in stages[name]]
        print(
            f"    {label:<34} {statistics.median(values):>7.0f}   "
            f"{percentile(values, 0.95):>7.0f}   {max(values):>7.0f}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=400)
    parser.add_argument("--latency-orders", type=int, default=40)
    parser.add_argument("--poll-seconds", type=float, default=0.5)
    parser.add_argument("--day-seconds", type=float, default=0.02)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--database", default="bench_fulfil")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    return parser


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
