"""``Idempotency-Key`` for writes that move money (orders, payments).

The first request with a key runs and its response is stored *in the same transaction* as
its effect: a crash between commit and response leaves the stored response behind, and the
retry gets it. A request that fails (a 409, a 422) rolls back and stores nothing, so the
client may retry the same key once the cause is gone. The same key with another body is a
422. Two requests with one key at the same moment: the second waits for the first's
transaction (the key is its primary key) and then answers with the first's response.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.db import dialect_of, insert_for
from livecommerce.errors import Conflict, ValidationFailed
from livecommerce.i18n.messages import N_
from livecommerce.orders.models import IdempotencyRecord

MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    message = N_("This Idempotency-Key was already used for a different request.")


class InvalidIdempotencyKey(ValidationFailed):
    code = "invalid_idempotency_key"
    message = N_("The Idempotency-Key must be 1 to 255 printable characters.")


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    message = N_("A request with this Idempotency-Key is still being processed. Retry shortly.")


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]


def request_hash(scope: str, body: Any) -> str:
    canonical = json.dumps(
        {"scope": scope, "body": body}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidIdempotencyKey()
    return key


@cache
def _claim_statement(dialect: str) -> Any:
    table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
    return (
        insert_for(dialect, table)
        .values(
            user_id=bindparam("user_id"),
            key=bindparam("key"),
            scope=bindparam("scope"),
            request_hash=bindparam("request_hash"),
        )
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(table.c.key, table.c.user_id)
    )


_records = IdempotencyRecord.__table__  # type: ignore[attr-defined]
# One UPDATE: the row was claimed by ``begin`` with a Core insert, so it is not in the
# session and loading it first would cost a round trip for nothing. Built once.
_FINISH = (
    update(_records)
    .where(_records.c.user_id == bindparam("b_user"), _records.c.key == bindparam("b_key"))
    .values(status_code=bindparam("b_status"), response=bindparam("b_response"))
)


async def begin(
    session: AsyncSession, *, user_id: int, key: str, scope: str, body: Any
) -> Replay | None:
    """Claim ``key`` for this request, or return the response of the request that had it."""
    check_key(key)
    digest = request_hash(scope, body)
    claimed = await session.execute(
        _claim_statement(dialect_of(session)),
        {"user_id": user_id, "key": key, "scope": scope, "request_hash": digest},
    )
    if claimed.first() is not None:
        return None
    record = (
        await session.scalars(
            select(IdempotencyRecord)
            .where(col(IdempotencyRecord.user_id) == user_id, col(IdempotencyRecord.key) == key)
            .execution_options(populate_existing=True)
        )
    ).one()
    if record.request_hash != digest:
        raise IdempotencyKeyReused()
    if record.status_code is None or record.response is None:
        raise IdempotencyInProgress()
    return Replay(record.status_code, record.response)


async def finish(
    session: AsyncSession, *, user_id: int, key: str, status_code: int, body: dict[str, Any]
) -> None:
    done = await session.execute(
        _FINISH, {"b_user": user_id, "b_key": key, "b_status": status_code, "b_response": body}
    )
    assert done.rowcount == 1, "finish() without begin()"  # type: ignore[attr-defined]


async def begin_together(
    session: AsyncSession, *, scope: str, requests: list[tuple[int, str, Any]]
) -> dict[tuple[int, str], str]:
    """``begin`` for several requests ``(user_id, key, body)`` in one statement: the
    ``(user_id, key)`` pairs claimed for them, with their request hashes. A key not claimed
    is another request's (done, or still running): its request goes through ``begin`` on
    its own, for the replay."""
    if not requests:
        return {}
    digests = {
        (user_id, check_key(key)): request_hash(scope, body) for user_id, key, body in requests
    }
    rows = [
        {"user_id": user_id, "key": key, "scope": scope, "request_hash": digest}
        for (user_id, key), digest in digests.items()
    ]
    claimed = await session.execute(_claim_statement(dialect_of(session)), rows)
    return {(user_id, key): digests[(user_id, key)] for key, user_id in claimed}


@cache
def _finish_statement(dialect: str) -> Any:
    """The answers of claimed keys, all in one statement (an upsert of rows this transaction
    inserted): one round trip, where an UPDATE per key is one each."""
    add = insert_for(dialect, _records)
    return add.on_conflict_do_update(
        index_elements=["user_id", "key"],
        set_={"status_code": add.excluded.status_code, "response": add.excluded.response},
    ).returning(_records.c.key)


async def finish_together(
    session: AsyncSession,
    *,
    scope: str,
    answers: list[tuple[int, str, str, int, dict[str, Any]]],
) -> None:
    """``finish`` for requests claimed together: ``(user_id, key, request_hash, status_code,
    body)``, the hashes as ``begin_together`` gave them."""
    if not answers:
        return
    rows = [
        {
            "user_id": user_id,
            "key": key,
            "scope": scope,
            "request_hash": digest,
            "status_code": status,
            "response": body,
        }
        for user_id, key, digest, status, body in answers
    ]
    done = (await session.execute(_finish_statement(dialect_of(session)), rows)).all()
    assert len(done) == len(rows), "finish_together() without begin_together()"
