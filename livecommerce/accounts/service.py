"""Accounts: registration, sign-in, profiles, and hosts invited by merchants and linked to
them once they accept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.accounts.models import HostInvitation, Merchant, MerchantHost, Role, User
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


class InvitationNotFound(NotFound):
    code = "invitation_not_found"
    message = N_("There is no such invitation.")


class MerchantNotLinked(NotFound):
    code = "merchant_not_linked"
    message = N_("You do not stream for this merchant.")


class TooManyInvitations(Conflict):
    code = "too_many_invitations"
    message = N_(
        "You have %(limit)s invitations waiting for an answer. Cancel some before sending more."
    )


# Pending invitations one merchant may have at once: each is a row kept until answered.
MAX_PENDING_INVITATIONS = 200


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
    """The merchants whose invitation ``user`` accepted."""
    rows = await session.scalars(
        select(Merchant)
        .join(MerchantHost, col(MerchantHost.merchant_id) == col(Merchant.id))
        .where(col(MerchantHost.host_id) == user.id)
        .order_by(col(Merchant.id))
    )
    return list(rows)


async def is_linked(*, session: AsyncSession, merchant_id: int, host_id: int) -> bool:
    """Whether the host accepted the merchant's invitation and neither ended it since."""
    link = await session.scalar(
        select(col(MerchantHost.host_id)).where(
            col(MerchantHost.merchant_id) == merchant_id, col(MerchantHost.host_id) == host_id
        )
    )
    return link is not None


# --- Merchant side: invitations and linked hosts -----------------------------------------


async def invite_host(
    *, session: AsyncSession, merchant: Merchant, email: str
) -> HostInvitation | None:
    """Invite ``email`` to host for ``merchant``: the pending invitation, or None when a
    host with that email already streams for it.

    The answer is the same whether the email has an account, a host account or none: the
    invitation waits by email, and only a host who accepts it is revealed to the merchant.
    """
    assert merchant.id is not None
    email = normalize_email(email)
    linked = await session.scalar(
        select(col(MerchantHost.host_id))
        .join(User, col(User.id) == col(MerchantHost.host_id))
        .where(col(MerchantHost.merchant_id) == merchant.id, col(User.email) == email)
    )
    if linked is not None:
        return None
    invitation = await _invitation(session, merchant.id, email)
    if invitation is not None:
        return invitation
    pending = await session.scalar(
        select(func.count())
        .select_from(HostInvitation)
        .where(col(HostInvitation.merchant_id) == merchant.id)
    )
    if (pending or 0) >= MAX_PENDING_INVITATIONS:
        raise TooManyInvitations(limit=MAX_PENDING_INVITATIONS)
    invitation = HostInvitation(merchant_id=merchant.id, email=email)
    session.add(invitation)
    try:
        # Two invitations at once: the unique (merchant, email) index keeps one.
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        invitation = await _invitation(session, merchant.id, email)
        assert invitation is not None
    return invitation


async def _invitation(session: AsyncSession, merchant_id: int, email: str) -> HostInvitation | None:
    return await session.scalar(
        select(HostInvitation).where(
            col(HostInvitation.merchant_id) == merchant_id, col(HostInvitation.email) == email
        )
    )


async def pending_invitations(*, session: AsyncSession, merchant: Merchant) -> list[HostInvitation]:
    rows = await session.scalars(
        select(HostInvitation)
        .where(col(HostInvitation.merchant_id) == merchant.id)
        .order_by(col(HostInvitation.created_at), col(HostInvitation.id))
    )
    return list(rows)


async def cancel_invitation(
    *, session: AsyncSession, merchant: Merchant, invitation_id: int
) -> None:
    invitation = await session.get(HostInvitation, invitation_id)
    if invitation is None or invitation.merchant_id != merchant.id:
        raise InvitationNotFound()
    await session.delete(invitation)
    await session.flush()


async def list_hosts(
    *, session: AsyncSession, merchant: Merchant
) -> list[tuple[User, MerchantHost]]:
    """The hosts who accepted ``merchant``'s invitation."""
    rows = await session.execute(
        select(User, MerchantHost)
        .join(MerchantHost, col(MerchantHost.host_id) == col(User.id))
        .where(col(MerchantHost.merchant_id) == merchant.id)
        .order_by(col(MerchantHost.created_at))
    )
    return [(user, link) for user, link in rows]


async def unlink_host(*, session: AsyncSession, merchant: Merchant, host_id: int) -> None:
    """The host stops streaming for ``merchant``; from the next action on, they cannot drive
    its streams (those they were hosting included)."""
    link = await session.get(MerchantHost, (merchant.id, host_id))
    if link is None:
        raise HostNotFound()
    await session.delete(link)
    await session.flush()


# --- Host side: answering invitations -----------------------------------------------------


async def host_merchants(
    *, session: AsyncSession, host: User
) -> list[tuple[Merchant, HostInvitation | None, MerchantHost | None]]:
    """Every merchant that invited ``host`` (pending) or that ``host`` streams for
    (accepted), as ``(merchant, invitation, link)`` with exactly one of the two set."""
    invited = await session.execute(
        select(Merchant, HostInvitation)
        .join(HostInvitation, col(HostInvitation.merchant_id) == col(Merchant.id))
        .where(col(HostInvitation.email) == host.email)
    )
    linked = await session.execute(
        select(Merchant, MerchantHost)
        .join(MerchantHost, col(MerchantHost.merchant_id) == col(Merchant.id))
        .where(col(MerchantHost.host_id) == host.id)
    )
    entries: list[tuple[Merchant, HostInvitation | None, MerchantHost | None]] = [
        (merchant, invitation, None) for merchant, invitation in invited
    ]
    entries += [(merchant, None, link) for merchant, link in linked]
    entries.sort(key=lambda e: (e[1] is None, e[0].id or 0))  # pending first
    return entries


async def accept_invitation(
    *, session: AsyncSession, host: User, merchant_id: int
) -> tuple[Merchant, MerchantHost]:
    """``host`` accepts ``merchant_id``'s invitation and from now on streams for it.
    Accepting again once linked answers the link as it is."""
    assert host.id is not None
    merchant = await session.get(Merchant, merchant_id)
    link = await session.get(MerchantHost, (merchant_id, host.id))
    if merchant is not None and link is not None:
        return merchant, link
    invitation = await _invitation(session, merchant_id, host.email)
    if merchant is None or invitation is None or host.role != Role.HOST:
        raise InvitationNotFound()
    link = MerchantHost(merchant_id=merchant_id, host_id=host.id, created_at=invitation.created_at)
    await session.delete(invitation)
    session.add(link)
    try:
        # The host accepting twice at once: the primary key keeps one link.
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        link = await session.get(MerchantHost, (merchant_id, host.id))
        assert link is not None
    return merchant, link


async def decline_invitation(*, session: AsyncSession, host: User, merchant_id: int) -> None:
    invitation = await _invitation(session, merchant_id, host.email)
    if invitation is None:
        raise InvitationNotFound()
    await session.delete(invitation)
    await session.flush()


async def leave_merchant(*, session: AsyncSession, host: User, merchant_id: int) -> None:
    """``host`` stops streaming for ``merchant_id``, as if the merchant had removed them."""
    link = await session.get(MerchantHost, (merchant_id, host.id))
    if link is None:
        raise MerchantNotLinked()
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
