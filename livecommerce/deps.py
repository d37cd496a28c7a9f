"""Request dependencies as ``Annotated`` aliases: settings, sessions, ids in paths and
queries, and the negotiation of locale and currency.

Who is calling (the principal, the signed-in user, roles) and the request context built on
it are accounts' own (``livecommerce/accounts/deps.py``): this module sits below every
domain, accounts included, and knows no account.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Protocol

from fastapi import Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from livecommerce.config import Settings
from livecommerce.db import session_scope
from livecommerce.errors import UnsupportedCurrency, UnsupportedLocale
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


class Preferences(Protocol):
    """What a signed-in user saved: the language and currency they read in."""

    @property
    def locale(self) -> str: ...

    @property
    def currency(self) -> str: ...


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


def negotiate_locale(request: HTTPConnection, user: Preferences | None, default: str) -> str:
    """``?locale=``, else Accept-Language, else the user's saved locale, else the default."""
    locale = requested_locale(
        request.query_params.get("locale"), request.headers.get("accept-language")
    )
    if locale is not None:
        return locale
    if user is not None:
        return user.locale
    return default


def choose_currency(explicit: str | None, user: Preferences | None, locale: str) -> str:
    """``?currency=``, else the user's saved currency, else the locale's market default."""
    if explicit:
        chosen = explicit.strip().upper()
        if not is_supported_currency(chosen):
            raise UnsupportedCurrency(supported=", ".join(supported_currencies()))
        return chosen
    if user is not None:
        return user.currency
    return DEFAULT_CURRENCY[locale]
