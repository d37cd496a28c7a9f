"""The served API, probed from outside with schemathesis against its own ``/openapi.json``.

A real ``livecommerce serve`` process on each test database is sent generated requests for
every documented operation, valid ones and invalid ones, anonymously and as a signed-in
viewer, merchant and admin. Each answer must not be a 5xx, and must be what the OpenAPI says
that operation answers: a documented status code, the documented content type and a body
matching the documented schema (errors included: they are declared once per router, see
``livecommerce/errors.py``).

The budget is fixed so that CI time stays bounded: ``MAX_EXAMPLES`` generated cases per
operation, generation mode and role, derandomized (the same cases on every run), with no
shrinking. ``LIVECOMMERCE_FUZZ_EXAMPLES`` raises it for a deeper run by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import PASSWORD, account, create_product, login
from tests.fixtures.server import running_server, server_env

MAX_EXAMPLES = int(os.environ.get("LIVECOMMERCE_FUZZ_EXAMPLES", "12"))
ROLES = ["anonymous", "viewer", "merchant", "admin"]
CHECK_NAMES = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]
# Signing out revokes every token of the account: the role's later cases would all be 401.
# Its anonymous cases still run; tests/accounts/test_logout.py covers the rest.
SIGN_OUT = "POST /api/v1/auth/logout"


@dataclass
class Target:
    base: str
    schema: OpenApiSchema
    headers: dict[str, dict[str, str]]


def _create_admin(env: dict[str, str], email: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "livecommerce.cli",
            "create-admin",
            "--email",
            email,
            "--password",
            PASSWORD,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


async def _seed(http: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    """Accounts for each role, and something for ids to find: a product in stock and a
    stream, so that generated ids 1 and up reach past 404 now and then."""
    _, viewer = await account(http)
    _, merchant = await account(http, role="merchant")
    product = await create_product(http, merchant)
    stock = await http.put(
        f"/api/v1/products/{product['id']}/stock/KZALA", json={"quantity": 50}, headers=merchant
    )
    assert stock.status_code == 200, stock.text
    stream = await http.post(
        "/api/v1/streams", json={"title": {"ru": "Эфир"}, "languages": ["ru"]}, headers=merchant
    )
    assert stream.status_code == 201, stream.text
    return {"viewer": viewer, "merchant": merchant}


@pytest.fixture(scope="module")
async def target(
    database: TestDatabase, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Target]:
    data_dir = tmp_path_factory.mktemp(f"fuzz-{database.backend}")
    env = server_env(data_dir, database_url=database.url)
    _create_admin(env, "admin@example.kz")
    try:
        with running_server(env, data_dir / "server.log") as base:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                headers = await _seed(http)
                headers["admin"] = await login(http, "admin@example.kz")
            headers["anonymous"] = {}
            schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
            yield Target(base, schema, headers)
    finally:
        await database.reset()


def _checks() -> list[Callable[..., Any]]:
    return [CHECKS.get_one(name) for name in CHECK_NAMES]


@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(target: Target, role: str) -> None:
    """No generated request, valid or not, gets a 5xx or an answer its operation's OpenAPI
    does not describe (status code, content type, body schema)."""
    checks = _checks()
    headers = target.headers[role]
    failures: list[str] = []
    count = 0
    for result in target.schema.get_all_operations():
        # An operation its own schema cannot describe is a failure of the OpenAPI itself.
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        if role != "anonymous" and operation.label == SIGN_OUT:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(
                max_examples=MAX_EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                print_blob=False,
            )
            @given(case=strategy)
            def probe(case: Any) -> None:
                nonlocal count
                count += 1
                response = case.call(base_url=target.base, headers=headers, timeout=30)
                case.validate_response(response, checks=checks)

            try:
                probe()
            except Unsatisfiable:
                # Nothing to get wrong: no parameters, body or headers to make invalid.
                assert mode is GenerationMode.NEGATIVE, operation.label
            # schemathesis reports what a case broke as a group of failures (a BaseException).
            except (Exception, FailureGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    print(f"{role}: {count} requests")
    assert count > 0
    if headers:  # the role's cases ran signed in to the end
        me = httpx.get(f"{target.base}/api/v1/me", headers=headers, timeout=30)
        assert me.status_code == 200, me.text
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
