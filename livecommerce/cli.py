"""The ``livecommerce`` command: serve, worker, migrate, seed, create-admin, rates."""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.config import Settings, get_settings
from livecommerce.db import create_engine, session_factory, session_scope


async def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    from livecommerce.migrate import ensure_migrated

    engine = create_engine(settings.resolved_database_url)
    try:
        await ensure_migrated(engine)
        async with session_scope(session_factory(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from livecommerce.migrate import upgrade

    upgrade(settings.resolved_database_url, args.revision)
    print(f"Database is at revision {args.revision}.")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from livecommerce.app import create_app
    from livecommerce.logs import server_log_config
    from livecommerce.migrate import ensure_migrated
    from livecommerce.rooms.server import WEBSOCKET_OPTIONS, tune_collector

    async def _check() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            await ensure_migrated(engine)
        finally:
            await engine.dispose()

    asyncio.run(_check())  # fail with one clear line before the server starts
    host, port = args.host or settings.host, args.port or settings.port
    workers = args.workers or settings.workers
    if workers > 1 and not settings.redis_url:
        print(
            "Several API processes share their rooms and flash-sale admission through Redis:"
            " set LIVECOMMERCE_REDIS_URL, or serve with one worker.",
            file=sys.stderr,
        )
        return 2
    # The app (and the sandbox provider's default webhook address) sees where it listens.
    settings = settings.model_copy(update={"host": host, "port": port})
    base = f"http://{host}:{port}"
    print(
        f"livecommerce is starting on {base}\n"
        f"  watch streams:   {base}/\n"
        f"  host console:    {base}/host\n"
        f"  merchant pages:  {base}/merchant\n"
        f"  API docs:        {base}/docs",
        flush=True,
    )
    worker = None
    if settings.embedded_jobs and settings.embedded_worker and not args.no_worker:
        # The embedded queue needs no service, but it does need a worker: run one beside
        # the API, with the scheduler, sharing this process's environment and data dir.
        worker = subprocess.Popen(
            [sys.executable, "-m", "livecommerce.cli", "worker", "--beat", "--embedded"],
            preexec_fn=_die_with_parent,  # one prctl call; no threads run yet
        )
    # One access line per request is an info line: above info uvicorn would still build each
    # line's parts (client address, path) to throw them away.
    access_log = settings.log_level.lower() in ("trace", "debug", "info")
    # Every handler redacts tokens: a WebSocket's is in its URL (livecommerce/logs.py).
    log_config = server_log_config(LOGGING_CONFIG)
    try:
        if workers == 1:
            app = create_app(settings)
            tune_collector()
            uvicorn.run(
                app,
                host=host,
                port=port,
                log_level=settings.log_level,
                log_config=log_config,
                access_log=access_log,
                timeout_keep_alive=settings.keep_alive_seconds,
                **WEBSOCKET_OPTIONS,
            )
        else:
            # Each process builds its own app from the environment. All must sign tokens with
            # one key: when none is configured, the one in the data dir is made now, once.
            settings.resolved_secret_key()
            os.environ.update(LIVECOMMERCE_HOST=host, LIVECOMMERCE_PORT=str(port))
            uvicorn.run(
                "livecommerce.cli:worker_app",
                factory=True,
                host=host,
                port=port,
                log_level=settings.log_level,
                log_config=log_config,
                access_log=access_log,
                timeout_keep_alive=settings.keep_alive_seconds,
                workers=workers,
                **WEBSOCKET_OPTIONS,
            )
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        if worker is not None:
            worker.terminate()  # a warm shutdown: the job in hand finishes or goes back
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    return 0


def worker_app() -> Any:
    """The app of one ``serve --workers N`` process, built from the environment."""
    from livecommerce.app import create_app
    from livecommerce.rooms.server import tune_collector

    app = create_app()
    tune_collector()
    return app


def _die_with_parent() -> None:
    """In the embedded worker, before it starts: if ``serve`` dies without stopping it (a
    SIGKILL), the kernel sends the worker SIGTERM, so no orphan keeps working the queue."""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """A Celery worker for the fulfilment jobs (``--beat``: with the periodic scheduler)."""
    from workers.worker import celery_app

    argv = [
        "worker",
        f"--loglevel={(args.loglevel or settings.log_level).upper()}",
        f"--concurrency={args.concurrency}",
        "--pool=prefork",
    ]
    if args.beat:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", f"--schedule={settings.data_dir / 'beat-schedule'}"]
    if settings.embedded_jobs:
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    if args.embedded:
        argv += ["--hostname=embedded@%h"]
    celery_app.worker_main(argv)
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from livecommerce.demo.seed import DEMO_ACCOUNTS, seed_demo

    if not args.demo:
        print("Nothing to seed: pass --demo for the demo merchant, catalog and accounts.")
        return 2
    counts = asyncio.run(_in_session(settings, lambda s: seed_demo(session=s)))
    print(f"Demo catalog: {counts['created']} products created, {counts['updated']} refreshed.")
    print("Demo accounts (sign in at POST /api/v1/auth/token):")
    for account in DEMO_ACCOUNTS:
        print(f"  {account.role:<9} {account.email:<34} password: {account.password}")
    return 0


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> int:
    from livecommerce.accounts.passwords import check_password
    from livecommerce.accounts.schemas import RegisterIn
    from livecommerce.accounts.service import create_admin
    from livecommerce.errors import AppError

    password = args.password or getpass.getpass("Password for the new admin: ")
    # The same rules as the public sign-up form.
    RegisterIn(email=args.email, password=password, display_name=args.name, role="viewer")
    try:
        check_password(password, min_length=settings.password_min_length)
    except AppError as exc:
        print(exc.localized("en"), file=sys.stderr)
        return 2
    user = asyncio.run(
        _in_session(
            settings,
            lambda s: create_admin(
                session=s,
                email=args.email,
                password=password,
                display_name=args.name,
                min_password_length=settings.password_min_length,
            ),
        )
    )
    print(f"Admin {user.email} created (id {user.id}).")
    return 0


def _read_rates(path: Path) -> list[dict[str, str]]:
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return list(data["rates"] if isinstance(data, dict) else data)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def cmd_rates(settings: Settings, args: argparse.Namespace) -> int:
    from livecommerce.rates import service

    if args.action == "list":
        for rate in asyncio.run(_in_session(settings, lambda s: service.list_latest(session=s))):
            when = f"{rate.as_of:%Y-%m-%d %H:%M}Z"
            print(f"1 {rate.base} = {rate.rate} {rate.quote}   ({rate.source}, {when})")
        return 0
    rows = _read_rates(Path(args.file))

    async def _import(session: AsyncSession) -> int:
        for row in rows:
            await service.add_rate(
                session=session,
                base=row["base"].upper(),
                quote=row["quote"].upper(),
                rate=Decimal(str(row["rate"])),
                source=row.get("source") or args.source,
                as_of=datetime.fromisoformat(row["as_of"]),
            )
        return len(rows)

    print(f"Imported {asyncio.run(_in_session(settings, _import))} rates.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecommerce", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP and WebSocket server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--workers",
        type=int,
        choices=range(1, 65),
        metavar="N",
        help="API processes on the one port (more than one needs LIVECOMMERCE_REDIS_URL)",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="do not start the embedded job worker (run `livecommerce worker` yourself)",
    )
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run a Celery worker for the background jobs")
    worker.add_argument("--beat", action="store_true", help="also run the periodic scheduler")
    worker.add_argument("--concurrency", type=int, default=1, help="worker processes")
    worker.add_argument("--loglevel")
    worker.add_argument("--embedded", action="store_true", help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)
    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=cmd_migrate)
    seed = sub.add_parser("seed", help="load data")
    seed.add_argument("--demo", action="store_true", help="demo merchant, catalog and accounts")
    seed.set_defaults(func=cmd_seed)
    admin = sub.add_parser("create-admin", help="create an administrator account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", default="Administrator")
    admin.add_argument("--password", help="prompted for when omitted")
    admin.set_defaults(func=cmd_create_admin)
    rates = sub.add_parser("rates", help="list or import exchange rates")
    rates.add_argument("action", choices=["list", "import"])
    rates.add_argument(
        "file", nargs="?", help="JSON or CSV with base, quote, rate, as_of[, source]"
    )
    rates.add_argument("--source", default="manual import")
    rates.set_defaults(func=cmd_rates)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "action", None) == "import" and not args.file:
        print("rates import needs a file", file=sys.stderr)
        return 2
    settings = get_settings()
    try:
        result: int = args.func(settings, args)
        return result
    except Exception as exc:  # a clear line for the operator instead of a traceback
        from livecommerce.migrate import DatabaseNotMigrated

        if isinstance(exc, DatabaseNotMigrated):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
