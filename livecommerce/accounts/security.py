"""Password hashing (argon2id) and JWT access tokens (PyJWT, HS256)."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio.to_thread
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from livecommerce.errors import InvalidToken

_hasher = PasswordHasher()
ALGORITHM = "HS256"
GUEST_ROLE = "guest"


# At most this many argon2 runs at once per process (``LIVECOMMERCE_PASSWORD_HASH_CONCURRENCY``,
# set by ``set_hash_concurrency``). Each one is tens of ms of CPU: without a bound, a flood
# of sign-ins fills the thread pool and every core, and unrelated requests wait seconds.
# The rest queue on the event loop, where waiting costs nothing.
_hash_concurrency = 2
# One semaphore per event loop: an asyncio primitive belongs to the loop it first waits on.
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def set_hash_concurrency(limit: int) -> None:
    global _hash_concurrency
    _hash_concurrency = limit
    _slots.clear()


@asynccontextmanager
async def _hash_slot() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(_hash_concurrency)
    async with slot:
        yield


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow (tens of ms of CPU); keep it off the event loop.
    async with _hash_slot():
        return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(
    password_hash: str, password: str, *, admit: Callable[[], Awaitable[None]] | None = None
) -> bool:
    """``admit`` runs once a hashing slot is free, just before the hash, and may raise to
    refuse: a guess that queued behind others is checked against the throttle again, with
    the failures counted while it waited."""

    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async with _hash_slot():
        if admit is not None:
            await admit()
        return await anyio.to_thread.run_sync(_verify)


# Checked against when the email is unknown, so a wrong email costs as long as a wrong
# password and response times do not reveal which accounts exist.
DUMMY_HASH = _hasher.hash("not-a-real-password")


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    role: str
    expires_at: datetime
    # The user's token_version when it was issued; tokens from before revocation existed
    # carry none and count as version 0.
    version: int = 0

    @property
    def is_guest(self) -> bool:
        return self.role == GUEST_ROLE

    @property
    def user_id(self) -> int | None:
        return None if self.is_guest else int(self.subject)

    def current_for(self, user: _Versioned) -> bool:
        """False once the user signed out (or was signed out) after this token was issued."""
        return self.version == user.token_version


class _Versioned(Protocol):
    token_version: int


def create_token(
    *, secret: str, subject: str, role: str, lifetime: timedelta, version: int = 0
) -> tuple[str, int]:
    now = datetime.now(UTC)
    payload = {
        "sub": subject,
        "role": role,
        "ver": version,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM), int(lifetime.total_seconds())


def new_guest_subject() -> str:
    return f"guest-{uuid.uuid4().hex}"


MAX_USER_ID = 2**31 - 1  # ids are 32-bit (as deps.IdPath)


def decode_token(token: str, *, secret: str) -> TokenClaims:
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "role"]}
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    subject, role = payload.get("sub"), payload.get("role")
    if not isinstance(subject, str) or not isinstance(role, str):
        raise InvalidToken()
    # A user's subject is its id: ASCII digits (str.isdigit also takes "²", which int()
    # refuses) of a positive 32-bit integer, as ids are; anything else would reach the
    # database as an integer it cannot bind (2^63 on SQLite) and answer a 500.
    if role != GUEST_ROLE and not (
        subject.isascii()
        and subject.isdigit()
        and len(subject) <= 10
        and 1 <= int(subject) <= MAX_USER_ID
    ):
        raise InvalidToken()
    version = payload.get("ver", 0)
    if type(version) is not int:
        raise InvalidToken()
    return TokenClaims(subject, role, datetime.fromtimestamp(payload["exp"], UTC), version)
