"""Request dependencies as ``Annotated`` aliases: sessions, the caller, locale and currency."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.requests import HTTPConnection

from livecommerce.accounts.models import Role, User
from livecommerce.accounts.security import TokenClaims, decode_token
from livecommerce.config import Settings
from livecommerce.db import session_scope
from livecommerce.errors import (
    Forbidden,
    GuestNotAllowed,
    InvalidToken,
    NotAuthenticated,
    UnsupportedCurrency,
    UnsupportedLocale,
)
from livecommerce.i18n.locales import DEFAULT_CURRENCY, normalize_locale, parse_accept_language
from livecommerce.i18n.money import is_supported_currency, supported_currencies


async def request_settings(request: Request) -> Settings:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop per
    # request for a dictionary read.
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(request_settings)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    read_only = request.method in ("GET", "HEAD", "OPTIONS")
    async with session_scope(request.app.state.sessions, read_only=read_only) as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """For writing-method routes that only read (sign-in): no SQLite write lock held."""
    async with session_scope(request.app.state.sessions, read_only=True) as session:
        yield session


# scope="function": the commit runs before the response is sent, so a failed commit is an
# error response and a client that reads right after a 201 sees its own write.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]

# Database ids are 32-bit; a larger number in a path is a 422, not a database error.
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
# A warehouse code in a query (DEDUI, KZALA): letters and digits only, so that no byte a
# text column refuses (NUL) reaches the database and answers 500.
WAREHOUSE_CODE = r"^[A-Za-z0-9]{5}$"
IdQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1)]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user, or a guest viewer (``user`` is None)."""

    claims: TokenClaims
    user: User | None

    @property
    def role(self) -> str:
        return self.user.role if self.user else self.claims.role

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


# Request state under which a middleware that already checked the bearer token (the order
# route's front door) leaves ``(token, claims)``, so the token is not decoded twice.
BEARER_STATE = "bearer_claims"


def bearer_claims(request: Request, token: str, settings: Settings) -> TokenClaims:
    checked = request.scope.get("state", {}).get(BEARER_STATE)
    if checked is not None and checked[0] == token:
        claims: TokenClaims = checked[1]
        return claims
    return decode_token(token, secret=settings.resolved_secret_key())


# Built once: ``session.get`` builds and hashes its SELECT on every call, the signed-in
# caller's row is read by every request.
_USER_BY_ID = select(User).where(col(User.id) == bindparam("uid"))


async def active_user(session: AsyncSession, user_id: int | None, token_version: int) -> User:
    """The signed-in caller's row; a token whose account is gone or deactivated, or that was
    revoked (signed out: its version is not the row's), is a 401. The version check costs
    nothing more: it is compared on the row this read loads anyway."""
    user = (await session.execute(_USER_BY_ID, {"uid": user_id})).scalar_one_or_none()
    if user is None or not user.is_active or user.token_version != token_version:
        raise InvalidToken()
    return user


async def get_optional_principal(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(_bearer)],
) -> Principal | None:
    if not token:
        return None
    claims = bearer_claims(request, token, settings)
    if claims.is_guest:
        return Principal(claims, None)
    return Principal(claims, await active_user(session, claims.user_id, claims.version))


OptionalPrincipal = Annotated[Principal | None, Depends(get_optional_principal)]


async def get_principal(principal: OptionalPrincipal) -> Principal:
    if principal is None:
        raise NotAuthenticated()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    if principal.user is None:
        raise GuestNotAllowed()
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    async def _check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden()
        return user

    return _check


MerchantOrAdmin = Annotated[User, Depends(require_roles(Role.MERCHANT, Role.ADMIN))]
MerchantUser = Annotated[User, Depends(require_roles(Role.MERCHANT))]
AdminUser = Annotated[User, Depends(require_roles(Role.ADMIN))]


@dataclass(frozen=True)
class RequestContext:
    locale: str
    currency: str
    principal: Principal | None


def requested_locale(explicit: str | None, accept_language: str | None) -> str | None:
    """The locale the request itself names: ``?locale=`` (422 when it is not one of ours),
    else Accept-Language's best; None when it names none."""
    if explicit:
        locale = normalize_locale(explicit)
        if locale is None:
            raise UnsupportedLocale(supported="kk, ru, uz, en, zh")
        return locale
    preferred = parse_accept_language(accept_language)
    return preferred[0] if preferred else None


def negotiate_locale(request: HTTPConnection, user: User | None, default: str) -> str:
    """``?locale=``, else Accept-Language, else the user's saved locale, else the default."""
    locale = requested_locale(
        request.query_params.get("locale"), request.headers.get("accept-language")
    )
    if locale is not None:
        return locale
    if user is not None:
        return user.locale
    return default


def choose_currency(explicit: str | None, user: User | None, locale: str) -> str:
    """``?currency=``, else the user's saved currency, else the locale's market default."""
    if explicit:
        chosen = explicit.strip().upper()
        if not is_supported_currency(chosen):
            raise UnsupportedCurrency(supported=", ".join(supported_currencies()))
        return chosen
    if user is not None:
        return user.currency
    return DEFAULT_CURRENCY[locale]


async def get_context(
    request: Request,
    principal: OptionalPrincipal,
    settings: SettingsDep,
    locale: Annotated[str | None, Query(description="kk, ru, uz, en or zh")] = None,
    currency: Annotated[str | None, Query(description="ISO 4217 code, e.g. KZT")] = None,
) -> RequestContext:
    user = principal.user if principal else None
    chosen_locale = negotiate_locale(request, user, settings.default_locale)
    request.state.locale = chosen_locale
    return RequestContext(chosen_locale, choose_currency(currency, user, chosen_locale), principal)


ContextDep = Annotated[RequestContext, Depends(get_context)]
