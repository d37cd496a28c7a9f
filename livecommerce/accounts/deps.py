"""Who is calling, as request dependencies: the principal (a signed-in user or a guest
viewer), the signed-in user, role checks, and the request's context (locale, currency and
principal) built on them. The generic dependencies (settings, sessions, ids) are
``livecommerce/deps.py``'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from livecommerce.accounts.models import Role, User
from livecommerce.accounts.security import TokenClaims, decode_token
from livecommerce.config import Settings
from livecommerce.deps import SessionDep, SettingsDep, choose_currency, negotiate_locale
from livecommerce.errors import Forbidden, GuestNotAllowed, InvalidToken, NotAuthenticated

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
