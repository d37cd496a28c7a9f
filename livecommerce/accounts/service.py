"""Accounts: registration, sign-in, profiles and the merchant-host link."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.accounts.models import Merchant, MerchantHost, Role, User
from livecommerce.accounts.passwords import DEFAULT_MIN_LENGTH, check_password
from livecommerce.accounts.security import (
    DUMMY_HASH,
    GUEST_ROLE,
    create_token,
    hash_password,
    new_guest_subject,
    verify_password,
)
from livecommerce.accounts.throttle import Limit, Throttle, account_key, address_key
from livecommerce.errors import (
    AppError,
    Conflict,
    InvalidCredentials,
    NotFound,
    ValidationFailed,
)
from livecommerce.i18n.locales import DEFAULT_CURRENCY
from livecommerce.i18n.messages import N_


class EmailTaken(Conflict):
    code = "email_taken"
    message = N_("An account with this email already exists.")


class HostNotFound(NotFound):
    code = "host_not_found"
    message = N_("No host account with this email was found.")


class NotAHost(ValidationFailed):
    code = "not_a_host"
    message = N_("This account is not a host account.")


class TooManyAttempts(AppError):
    """Same answer whether the account exists or not: counters are kept per email asked."""

    status = 429
    code = "too_many_attempts"
    message = N_("Too many sign-in attempts. Please try again in %(minutes)s min.")

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            details={"retry_after": retry_after}, minutes=max(1, -(-retry_after // 60))
        )
        self.headers = {"Retry-After": str(retry_after)}


class WrongPassword(ValidationFailed):
    code = "wrong_password"
    message = N_("The current password is wrong.")


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def register(
    *,
    session: AsyncSession,
    email: str,
    password: str,
    display_name: str,
    role: Role,
    locale: str,
    currency: str | None,
    merchant_name: str | None = None,
    min_password_length: int = DEFAULT_MIN_LENGTH,
) -> User:
    email = normalize_email(email)
    check_password(password, min_length=min_password_length)
    # Hash before the first query: on SQLite the first statement of a write takes the
    # database's write lock, which should not be held through tens of ms of argon2.
    password_hash = await hash_password(password)
    if await session.scalar(select(col(User.id)).where(col(User.email) == email)) is not None:
        raise EmailTaken()
    user = User(
        email=email,
        password_hash=password_hash,
        display_name=display_name,
        role=role.value,
        locale=locale,
        currency=currency or DEFAULT_CURRENCY[locale],
    )
    session.add(user)
    try:
        # The unique index settles a race between two sign-ups with the same email.
        await session.flush()
    except IntegrityError as exc:
        raise EmailTaken() from exc
    if role is Role.MERCHANT:
        assert user.id is not None
        session.add(
            Merchant(owner_id=user.id, name=merchant_name or display_name, currency=user.currency)
        )
        await session.flush()
    return user


async def authenticate(
    *,
    session: AsyncSession,
    email: str,
    password: str,
    admit: Callable[[], Awaitable[None]] | None = None,
) -> User:
    user = await session.scalar(select(User).where(col(User.email) == normalize_email(email)))
    if user is None:
        await verify_password(DUMMY_HASH, password, admit=admit)
        raise InvalidCredentials()
    if not await verify_password(user.password_hash, password, admit=admit) or not user.is_active:
        raise InvalidCredentials()
    return user


async def sign_in(
    *,
    session: AsyncSession,
    throttle: Throttle,
    email: str,
    password: str,
    address: str,
    account_limit: Limit,
    address_limit: Limit,
) -> User:
    """``authenticate`` behind the throttle: a key over its limit is refused before the
    database or the hash; a failure counts for the account and the address, a success
    clears the account's count (not the address's: one right password among many guesses
    from one address does not license more guesses)."""
    account = account_key(normalize_email(email))
    keys = [(account, account_limit), (address_key(address), address_limit)]

    async def admit() -> None:
        wait = await throttle.retry_after(keys)
        if wait:
            raise TooManyAttempts(wait)

    await admit()
    try:
        user = await authenticate(session=session, email=email, password=password, admit=admit)
    except InvalidCredentials:
        await throttle.failed(keys)
        raise
    await throttle.reset(account)
    return user


def issue_user_token(user: User, *, secret: str, minutes: int) -> tuple[str, int]:
    return create_token(
        secret=secret,
        subject=str(user.id),
        role=user.role,
        lifetime=timedelta(minutes=minutes),
        version=user.token_version,
    )


async def revoke_tokens(*, session: AsyncSession, user: User) -> None:
    """Every token issued to ``user`` so far stops working (sign-out everywhere)."""
    # In SQL, so two sign-outs at once both count and neither undoes the other.
    await session.execute(
        update(User)
        .where(col(User.id) == user.id)
        .values(token_version=col(User.token_version) + 1)
    )


async def change_password(
    *,
    session: AsyncSession,
    throttle: Throttle,
    user: User,
    current_password: str,
    new_password: str,
    min_password_length: int,
    account_limit: Limit,
) -> User:
    """A new password under the policy, for whoever knows the current one; every token
    issued before is revoked (the caller gets a new one). Wrong current passwords count
    against the account's sign-in throttle: a stolen token is no way around it."""
    check_password(new_password, min_length=min_password_length)
    account = account_key(user.email)

    async def admit() -> None:
        wait = await throttle.retry_after([(account, account_limit)])
        if wait:
            raise TooManyAttempts(wait)

    await admit()
    if not await verify_password(user.password_hash, current_password, admit=admit):
        await throttle.failed([(account, account_limit)])
        raise WrongPassword(details={"field": "current_password"})
    password_hash = await hash_password(new_password)
    version = await session.scalar(
        update(User)
        .where(col(User.id) == user.id)
        .values(password_hash=password_hash, token_version=col(User.token_version) + 1)
        .returning(col(User.token_version))
    )
    assert version is not None
    user.password_hash, user.token_version = password_hash, version
    await throttle.reset(account)
    return user


def issue_guest_token(*, secret: str, minutes: int) -> tuple[str, int]:
    return create_token(
        secret=secret,
        subject=new_guest_subject(),
        role=GUEST_ROLE,
        lifetime=timedelta(minutes=minutes),
    )


async def update_profile(
    *,
    session: AsyncSession,
    user: User,
    display_name: str | None,
    locale: str | None,
    currency: str | None,
) -> User:
    if display_name is not None:
        user.display_name = display_name
    if locale is not None:
        user.locale = locale
    if currency is not None:
        user.currency = currency
    session.add(user)
    await session.flush()
    return user


async def merchant_of(*, session: AsyncSession, user: User) -> Merchant | None:
    return await session.scalar(select(Merchant).where(col(Merchant.owner_id) == user.id))


async def require_merchant_of(*, session: AsyncSession, user: User) -> Merchant:
    merchant = await merchant_of(session=session, user=user)
    if merchant is None:
        # Every merchant account gets a profile at registration; this is a broken account.
        raise NotFound()
    return merchant


async def merchants_hosted_by(*, session: AsyncSession, user: User) -> list[Merchant]:
    rows = await session.scalars(
        select(Merchant)
        .join(MerchantHost, col(MerchantHost.merchant_id) == col(Merchant.id))
        .where(col(MerchantHost.host_id) == user.id)
        .order_by(col(Merchant.id))
    )
    return list(rows)


async def link_host(
    *, session: AsyncSession, merchant: Merchant, email: str
) -> tuple[User, MerchantHost]:
    host = await session.scalar(select(User).where(col(User.email) == normalize_email(email)))
    if host is None:
        raise HostNotFound()
    if host.role != Role.HOST:
        raise NotAHost()
    assert merchant.id is not None and host.id is not None
    link = await session.get(MerchantHost, (merchant.id, host.id))
    if link is None:
        link = MerchantHost(merchant_id=merchant.id, host_id=host.id)
        session.add(link)
        await session.flush()
    return host, link


async def list_hosts(
    *, session: AsyncSession, merchant: Merchant
) -> list[tuple[User, MerchantHost]]:
    rows = await session.execute(
        select(User, MerchantHost)
        .join(MerchantHost, col(MerchantHost.host_id) == col(User.id))
        .where(col(MerchantHost.merchant_id) == merchant.id)
        .order_by(col(MerchantHost.created_at))
    )
    return [(user, link) for user, link in rows]


async def unlink_host(*, session: AsyncSession, merchant: Merchant, host_id: int) -> None:
    link = await session.get(MerchantHost, (merchant.id, host_id))
    if link is None:
        raise HostNotFound()
    await session.delete(link)
    await session.flush()


async def create_admin(
    *,
    session: AsyncSession,
    email: str,
    password: str,
    display_name: str,
    min_password_length: int = DEFAULT_MIN_LENGTH,
) -> User:
    return await register(
        session=session,
        email=email,
        password=password,
        display_name=display_name,
        role=Role.ADMIN,
        locale="en",
        currency=None,
        min_password_length=min_password_length,
    )
