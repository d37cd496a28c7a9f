"""Password hashing (argon2id) and JWT access tokens (PyJWT, HS256)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio.to_thread
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from livecommerce.errors import InvalidToken

_hasher = PasswordHasher()
ALGORITHM = "HS256"
GUEST_ROLE = "guest"


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow (tens of ms of CPU); keep it off the event loop.
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(_verify)


# Checked against when the email is unknown, so a wrong email costs as long as a wrong
# password and response times do not reveal which accounts exist.
DUMMY_HASH = _hasher.hash("not-a-real-password")


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    role: str
    expires_at: datetime

    @property
    def is_guest(self) -> bool:
        return self.role == GUEST_ROLE

    @property
    def user_id(self) -> int | None:
        return None if self.is_guest else int(self.subject)


def create_token(*, secret: str, subject: str, role: str, lifetime: timedelta) -> tuple[str, int]:
    now = datetime.now(UTC)
    payload = {
        "sub": subject,
        "role": role,
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
    return TokenClaims(subject, role, datetime.fromtimestamp(payload["exp"], UTC))
