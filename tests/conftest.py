from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from livecommerce import jobs
from livecommerce.accounts.throttle import MemoryThrottle
from livecommerce.app import create_app
from livecommerce.config import Settings
from livecommerce.flashsales.admission import Admission
from livecommerce.flashsales.gate import MemoryGate
from livecommerce.rooms.broker import MemoryBroker
from tests.fixtures.database import TestDatabase, open_database, require_postgres
from tests.fixtures.jobs import Recorder
from tests.fixtures.server import serving_in_process
from workers.app import make_celery

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_postgres()
    return str(request.param)


@pytest.fixture(scope="session")
async def database(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestDatabase]:
    db = await open_database(backend, tmp_path_factory.mktemp(f"db-{backend}"))
    yield db
    await db.engine.dispose()


@pytest.fixture
async def clean(database: TestDatabase) -> AsyncIterator[TestDatabase]:
    """The test database, emptied after the test: for tests whose server processes write to
    it (``client`` empties it for the in-process app)."""
    yield database
    await database.reset()


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        secret_key="test-secret-key-that-is-long-enough-for-hs256",
        **overrides,
    )


@pytest.fixture(scope="session")
async def app(
    database: TestDatabase, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(database.url, tmp_path_factory.mktemp("data")))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI, database: TestDatabase) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    # Nothing a test announced may reach the next test's rooms (stream ids restart at 1).
    await app.state.hub.flush_pending()
    if isinstance(app.state.broker, MemoryBroker):
        await app.state.broker.close()
    # Nor may its admission gate (sale and product ids restart too).
    await app.state.admission.gate.close()
    app.state.admission = Admission(MemoryGate(), sessions=app.state.sessions)
    # Nor its failed sign-ins (every test signs in from the same address).
    await app.state.login_throttle.close()
    app.state.login_throttle = MemoryThrottle()
    await database.reset()


@pytest.fixture
async def lenient(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that receives the app's 500 instead of the exception behind it."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def ws_base(app: FastAPI) -> AsyncIterator[str]:
    """The session's app behind a real uvicorn on a free port (its lifespan already runs)."""
    async with serving_in_process(app) as base:
        yield base


@pytest.fixture
def sent_jobs(app: FastAPI) -> Iterator[Recorder]:
    """The app's job queue sends to a recorder for the test."""
    queue: jobs.JobQueue = app.state.jobs
    recorder = Recorder(queue)
    queue.configure(lambda: recorder)
    yield recorder
    queue.configure(partial(make_celery, app.state.settings))
