from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.accounts import service
from livecommerce.accounts.models import Role, User
from livecommerce.accounts.schemas import (
    HostLinkIn,
    HostOut,
    MerchantOut,
    PasswordChangeIn,
    ProfileUpdate,
    RegisterIn,
    TokenOut,
    UserOut,
)
from livecommerce.accounts.throttle import Limit, Throttle
from livecommerce.deps import (
    ContextDep,
    CurrentPrincipal,
    CurrentUser,
    IdPath,
    MerchantUser,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
)
from livecommerce.i18n.messages import translate

router = APIRouter(tags=["accounts"])


async def user_out(session: AsyncSession, user: User) -> UserOut:
    out = UserOut(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        locale=user.locale,
        currency=user.currency,
        created_at=user.created_at,
    )
    if user.role == Role.MERCHANT:
        merchant = await service.merchant_of(session=session, user=user)
        if merchant is not None:
            out.merchant = MerchantOut.model_validate(merchant, from_attributes=True)
    elif user.role == Role.HOST:
        merchants = await service.merchants_hosted_by(session=session, user=user)
        out.streams_for = [MerchantOut.model_validate(m, from_attributes=True) for m in merchants]
    return out


@router.post("/auth/register", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def register(
    body: RegisterIn, session: SessionDep, ctx: ContextDep, settings: SettingsDep
) -> UserOut:
    user = await service.register(
        session=session,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        role=Role(body.role),
        locale=body.locale or ctx.locale,
        currency=body.currency,
        merchant_name=body.merchant_name,
        min_password_length=settings.password_min_length,
    )
    return await user_out(session, user)


@router.post("/auth/token", response_model=TokenOut)
async def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: ReadSessionDep,
    settings: SettingsDep,
) -> TokenOut:
    throttle: Throttle = request.app.state.login_throttle
    user = await service.sign_in(
        session=session,
        throttle=throttle,
        email=form.username,
        password=form.password,
        # The peer address as the server sees it: behind a proxy, that proxy's own unless
        # uvicorn is told to trust its forwarded-for header (``--forwarded-allow-ips``).
        address=request.client.host if request.client else "unknown",
        account_limit=Limit(settings.login_account_attempts, settings.login_window_seconds),
        address_limit=Limit(settings.login_address_attempts, settings.login_window_seconds),
    )
    access_token, expires_in = service.issue_user_token(
        user, secret=settings.resolved_secret_key(), minutes=settings.access_token_minutes
    )
    return TokenOut(access_token=access_token, expires_in=expires_in)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(user: CurrentUser, session: SessionDep) -> Response:
    """Signs the user out everywhere: every token issued so far, this one too, is refused."""
    await service.revoke_tokens(session=session, user=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/auth/guest", response_model=TokenOut)
async def guest(settings: SettingsDep) -> TokenOut:
    access_token, expires_in = service.issue_guest_token(
        secret=settings.resolved_secret_key(), minutes=settings.guest_token_minutes
    )
    return TokenOut(access_token=access_token, expires_in=expires_in)


@router.get("/me", response_model=UserOut)
async def me(principal: CurrentPrincipal, session: SessionDep, ctx: ContextDep) -> UserOut:
    if principal.user is None:
        return UserOut(
            id=None,
            email=None,
            display_name=translate(ctx.locale, "Guest"),
            role=principal.role,
            locale=ctx.locale,
            currency=ctx.currency,
            created_at=None,
        )
    return await user_out(session, principal.user)


@router.patch("/me", response_model=UserOut)
async def update_me(body: ProfileUpdate, user: CurrentUser, session: SessionDep) -> UserOut:
    await service.update_profile(
        session=session,
        user=user,
        display_name=body.display_name,
        locale=body.locale,
        currency=body.currency,
    )
    return await user_out(session, user)


@router.post("/me/password", response_model=TokenOut)
async def change_password(
    request: Request,
    body: PasswordChangeIn,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> TokenOut:
    """Every earlier token is signed out; the answer is a new one for this client."""
    throttle: Throttle = request.app.state.login_throttle
    await service.change_password(
        session=session,
        throttle=throttle,
        user=user,
        current_password=body.current_password,
        new_password=body.new_password,
        min_password_length=settings.password_min_length,
        account_limit=Limit(settings.login_account_attempts, settings.login_window_seconds),
    )
    access_token, expires_in = service.issue_user_token(
        user, secret=settings.resolved_secret_key(), minutes=settings.access_token_minutes
    )
    return TokenOut(access_token=access_token, expires_in=expires_in)


@router.get("/merchants/me/hosts", response_model=list[HostOut])
async def list_hosts(user: MerchantUser, session: SessionDep) -> list[HostOut]:
    merchant = await service.require_merchant_of(session=session, user=user)
    pairs = await service.list_hosts(session=session, merchant=merchant)
    return [
        HostOut(id=h.id or 0, email=h.email, display_name=h.display_name, linked_at=link.created_at)
        for h, link in pairs
    ]


@router.post("/merchants/me/hosts", status_code=status.HTTP_201_CREATED, response_model=HostOut)
async def link_host(body: HostLinkIn, user: MerchantUser, session: SessionDep) -> HostOut:
    merchant = await service.require_merchant_of(session=session, user=user)
    host, link = await service.link_host(session=session, merchant=merchant, email=body.email)
    return HostOut(
        id=host.id or 0, email=host.email, display_name=host.display_name, linked_at=link.created_at
    )


@router.delete("/merchants/me/hosts/{host_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unlink_host(host_id: IdPath, user: MerchantUser, session: SessionDep) -> Response:
    merchant = await service.require_merchant_of(session=session, user=user)
    await service.unlink_host(session=session, merchant=merchant, host_id=host_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
