"""Where a flash-sale order's server CPU goes, stage by stage, one request at a time.

Usage (from the repository root)::

    .venv/bin/python bench/order_path.py [--orders 300] [--concurrency 10,50]
                                         [--backend postgresql|sqlite] [--database NAME]
                                         [--admin-dsn postgresql://postgres@127.0.0.1:5432/test]

The app runs in this process (no HTTP server, no sockets: each request is one ASGI call
with a prepared scope, through every middleware), on a scratch database (PostgreSQL
``--database``, default ``bench_order_path``, created and dropped; or a SQLite file in a
temporary directory). A live stream runs a flash sale with more units than orders; each
kind of winner meets a sale of its own, so that every buyer is a first-time buyer of it.
Then, one request after another:

- ``winner (door)``: ``POST /api/v1/orders?locale=ru`` that wins a unit (COD, with an
  Idempotency-Key): the front door takes the unit from the gate and places the order;
- ``winner (route)``: the same without a language in the request (the buyer's saved one):
  the door lets it through, and the order route admits and places it;
- ``loser (route)``: an order for the sold-out sale whose language is not in the request, so
  the front door lets it through and the order route refuses it from the gate;
- ``loser (door)``: the same with ``?locale=ru``: refused by the front door.

Winners are also sent ``--concurrency`` at a time. For each kind it prints the CPU per
request of this process (``time.process_time``, so the database server's own work is not in
it; for winners one at a time also the event loop's thread alone, the rest being job sends
in worker threads), with the garbage collector tuned as ``livecommerce serve`` tunes it,
then for both kinds of winner a cProfile breakdown by stage (cumulative time of the
functions that make each stage, as a share of the whole request; the profiler's own
overhead inflates every share alike, and coroutines resumed many times are counted more
than once: read the shares as a ranking, the CPU per request as the figure).

``--winners-only N`` places N winners at the door and nothing else (no tables), for a
sampling profiler run around the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from livecommerce.accounts.security import create_token  # noqa: E402
from livecommerce.app import create_app  # noqa: E402
from livecommerce.config import Settings  # noqa: E402
from livecommerce.migrate import upgrade  # noqa: E402
from livecommerce.rooms.server import tune_collector  # noqa: E402

SECRET = "order-path-benchmark-secret-key-not-for-production"
SHIP_TO = {
    "country": "KZ",
    "city": "Almaty",
    "postal_code": "050000",
    "address_line1": "Abay Ave 10",
    "recipient_name": "Test Buyer",
    "phone": "+7 701 123 45 67",
}
# Stage -> the functions whose cumulative time makes it (file suffix, function name).
STAGES: dict[str, list[tuple[str, str]]] = {
    "front door: read the request (body, token, language)": [
        ("orders/front_door.py", "understand"),
        ("orders/front_door.py", "_verdict"),  # before the winners' placing moved here
    ],
    "gate admission (door or route)": [
        ("flashsales/admission.py", "at_door"),
        ("orders/service.py", "admit"),
    ],
    "dependencies (session, token, buyer row, locale)": [
        ("fastapi/dependencies/utils.py", "solve_dependencies")
    ],
    "body validation": [("fastapi/routing.py", "_extract_endpoint_context")],
    "buyer row (in the dependencies on the route)": [
        ("livecommerce/accounts/deps.py", "active_user"),
        ("livecommerce/deps.py", "active_user"),  # before the caller's dependencies moved
    ],
    "idempotency key": [("orders/idempotency.py", "begin"), ("orders/idempotency.py", "finish")],
    "basket (products, stream, sale)": [("orders/service.py", "_load_basket")],
    "rates (per-process book)": [("rates/service.py", "book")],
    "customs history": [("orders/service.py", "earlier_imports")],
    "quote": [("orders/service.py", "_quote")],
    "hot rows (sale claim, stock)": [("orders/service.py", "_take_hot_rows")],
    "render": [("orders/routes.py", "render_order"), ("orders/rendering.py", "render_order")],
    "commit and after-commit": [("db.py", "commit_and_run_effects")],
}


class Caller:
    """Calls the ASGI app directly: one request, its status and body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, Any]:
        raw = json.dumps(body).encode()
        target, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": target,
            "raw_path": target.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            + [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        sent = False
        out: dict[str, Any] = {"status": 0, "body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
            elif message["type"] == "http.response.body":
                out["body"] += message.get("body", b"")

        await self.app(scope, receive, send)
        return out["status"], json.loads(out["body"] or b"null")


async def setup(app: Any, client: Any) -> tuple[int, int, int, dict[str, str]]:
    import httpx

    async def call(method: str, path: str, **kw: Any) -> Any:
        response = await client.request(method, path, **kw)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    assert isinstance(client, httpx.AsyncClient)
    await call(
        "POST",
        "/api/v1/auth/register",
        json={
            "email": "shop@order-path.example.kz",
            "password": "order-path-password",
            "display_name": "Shop",
            "role": "merchant",
        },
    )
    token = await call(
        "POST",
        "/api/v1/auth/token",
        data={"username": "shop@order-path.example.kz", "password": "order-path-password"},
    )
    mh = {"Authorization": f"Bearer {token['access_token']}"}
    product = await call(
        "POST",
        "/api/v1/products",
        headers=mh,
        json={
            "sku": "PATH-1",
            "title": {"ru": "Крем", "en": "Cream"},
            "price": {"amount": "120.00", "currency": "CNY"},
            "weight_grams": 180,
            "hs_code": "330499",
            "origin_country": "CN",
        },
    )
    await call(
        "PUT",
        f"/api/v1/products/{product['id']}/stock/KZALA",
        headers=mh,
        json={"quantity": 1_000_000},
    )
    stream = await call("POST", "/api/v1/streams", headers=mh, json={"title": {"ru": "Эфир"}})
    await call("POST", f"/api/v1/streams/{stream['id']}/start", headers=mh)
    return product["id"], stream["id"], 0, mh


async def start_sale(client: Any, mh: dict[str, str], product: int, stream: int, units: int) -> int:
    response = await client.post(
        f"/api/v1/streams/{stream}/flash-sales",
        headers=mh,
        json={
            "product_id": product,
            "price": {"amount": "80.00", "currency": "CNY"},
            "quantity": units,
            "duration_s": 3600,
        },
    )
    if response.status_code != 201:
        raise RuntimeError(f"sale: {response.status_code} {response.text[:300]}")
    return int(response.json()["id"])


async def buyers(app: Any, count: int) -> list[str]:
    from livecommerce.accounts.models import User
    from livecommerce.db import session_scope

    async with session_scope(app.state.sessions) as session:
        users = [
            User(
                email=f"path-{i}@order-path.example.kz",
                password_hash="-",
                display_name=f"Buyer {i}",
                role="viewer",
                locale="ru",
                currency="RUB",
            )
            for i in range(count)
        ]
        session.add_all(users)
        await session.flush()
        ids = [u.id for u in users]
    return [
        create_token(secret=SECRET, subject=str(i), role="viewer", lifetime=timedelta(hours=2))[0]
        for i in ids
    ]


def stage_table(profile: cProfile.Profile, requests: int) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile)
    found: dict[str, float] = {}
    for (filename, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        for stage, functions in STAGES.items():
            for suffix, function in functions:
                if name == function and filename.endswith(suffix):
                    found[stage] = found.get(stage, 0.0) + row[3]
    return [(stage, found.get(stage, 0.0) / requests * 1000) for stage in STAGES]


def print_stages(title: str, profile: cProfile.Profile, requests: int, whole: float) -> None:
    """``whole``: the profiled run's CPU per request, ms (the shares' denominator)."""
    print(title)
    print()
    print("| stage | ms per order (profiled) | share |")
    print("|---|---:|---:|")
    for stage, ms in stage_table(profile, requests):
        print(f"| {stage} | {ms:.3f} | {ms / whole:.0%} |")
    print(f"| (whole request, CPU under the profiler) | {whole:.3f} | 100% |")
    print()


async def run(args: argparse.Namespace) -> None:
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="lc-order-path-"))
    if args.backend == "postgresql":
        base, _, _ = args.admin_dsn.rpartition("/")
        admin = await asyncpg.connect(args.admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{args.database}"')
        await admin.close()
        url = f"postgresql+asyncpg://{base.split('://', 1)[1]}/{args.database}"
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    try:
        await asyncio.to_thread(upgrade, url)
        settings = Settings(
            database_url=url,
            data_dir=tmp,
            secret_key=SECRET,
            log_level="warning",
            embedded_worker=False,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                product, stream, _, mh = await setup(app, client)
                tokens = await buyers(app, args.orders * 3 + 40)
                caller = Caller(app)
                sale = await start_sale(client, mh, product, stream, 40)
                keys = iter(range(10**9))

                def body() -> dict[str, Any]:
                    return {
                        "items": [{"product_id": product, "quantity": 1}],
                        "ship_to": SHIP_TO,
                        "payment_method": "cod",
                        "stream_id": stream,
                        "flash_sale_id": sale,
                    }

                async def one(token: str, query: str = "") -> int:
                    status, _ = await caller.post(
                        f"/api/v1/orders{query}",
                        body(),
                        {
                            "Authorization": f"Bearer {token}",
                            "Idempotency-Key": f"path-{next(keys)}",
                        },
                    )
                    return status

                async def winners(query: str, width: int = 1) -> None:
                    """args.orders winners, ``width`` at a time, each buying its first unit of
                    a fresh sale (a buyer already holding units is let through to the route)."""
                    nonlocal sale
                    sale = await start_sale_fresh(client, mh, product, stream, args.orders)
                    for first in range(0, args.orders, width):
                        batch = range(first, min(first + width, args.orders))
                        statuses = await asyncio.gather(
                            *(one(tokens[40 + n], query) for n in batch)
                        )
                        assert set(statuses) == {201}, statuses

                for n in range(40):  # warm-up: caches, pools, statements
                    assert await one(tokens[n], "?locale=ru") == 201
                if args.winners_only:
                    for _ in range(0, args.winners_only, args.orders):
                        await winners("?locale=ru")
                    return
                figures: dict[str, float] = {}
                tune_collector()  # as ``livecommerce serve`` does once the app is up
                for kind, query in (("door", "?locale=ru"), ("route", "")):
                    await winners(query)  # warm-up of this path
                    start, own = time.process_time(), time.thread_time()
                    await winners(query)
                    await asyncio.sleep(0.2)  # job sends and other after-commit work finish
                    figures[f"winner ({kind})"] = (time.process_time() - start) / args.orders * 1000
                    figures[f"winner ({kind}): event loop's thread only"] = (
                        (time.thread_time() - own) / args.orders * 1000
                    )
                for width in args.concurrency:
                    for kind, query in (("door", "?locale=ru"), ("route", "")):
                        start = time.process_time()
                        await winners(query, width)
                        figures[f"winner ({kind}), {width} at once"] = (
                            (time.process_time() - start) / args.orders * 1000
                        )
                sale = await start_sale_fresh(client, mh, product, stream, 1)
                await one(tokens[0])  # takes the only unit
                first_loser = 40 + args.orders
                await one(tokens[first_loser])  # the once-a-second database check
                for kind, query in (("loser (route)", ""), ("loser (door)", "?locale=ru")):
                    start = time.process_time()
                    for n in range(args.orders):
                        index = first_loser + 1 + n
                        status = await one(tokens[index % len(tokens)], query)
                        assert status == 409, status
                    figures[kind] = (time.process_time() - start) / args.orders * 1000
                # The same winners again, under the profiler, for the stages.
                profiles: dict[str, cProfile.Profile] = {}
                profiled: dict[str, float] = {}
                for kind, query in (("door", "?locale=ru"), ("route", "")):
                    sale = await start_sale_fresh(client, mh, product, stream, args.orders)
                    profile = profiles[kind] = cProfile.Profile()
                    start = time.process_time()
                    profile.enable()
                    for n in range(args.orders):
                        assert await one(tokens[40 + n], query) == 201
                        await asyncio.sleep(0)  # after-commit work scheduled meanwhile runs here
                    profile.disable()
                    profiled[kind] = (time.process_time() - start) / args.orders * 1000
    finally:
        if args.backend == "postgresql":
            admin = await asyncpg.connect(args.admin_dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
            await admin.close()
    if args.winners_only:
        return
    print(
        f"Backend: {args.backend}; {args.orders} requests of each kind, one at a time, in process"
    )
    print()
    print("| request | server CPU ms per request |")
    print("|---|---:|")
    for kind, value in figures.items():
        print(f"| {kind} | {value:.2f} |")
    print()
    for kind, where in (("door", "at the door"), ("route", "through the route")):
        print_stages(
            f"Winner {where}, by stage (cProfile, cumulative):",
            profiles[kind],
            args.orders,
            profiled[kind],
        )
    if args.top:
        pstats.Stats(profiles["door"]).sort_stats("cumulative").print_stats(args.top)


async def start_sale_sold_out(client: Any, mh: dict[str, str], product: int, stream: int) -> None:
    """End whatever sale runs, so a new one can start."""
    current = (await client.get(f"/api/v1/streams/{stream}")).json().get("flash_sale")
    if current:
        await client.post(f"/api/v1/streams/{stream}/flash-sales/{current['id']}/end", headers=mh)


async def start_sale_fresh(
    client: Any, mh: dict[str, str], product: int, stream: int, units: int
) -> int:
    await start_sale_sold_out(client, mh, product, stream)
    return await start_sale(client, mh, product, stream, units)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(p) for p in text.split(",") if p],
        default=[10, 50],
        help="also winners in batches of this many at once",
    )
    parser.add_argument("--top", type=int, default=0, help="also print the N costliest calls")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--database", default="bench_order_path", help="the scratch database")
    parser.add_argument(
        "--winners-only", type=int, default=0, help="only place this many winners at the door"
    )
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
