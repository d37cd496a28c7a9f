from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.accounts import service
from livecommerce.accounts.deps import (
    ContextDep,
    CurrentPrincipal,
    CurrentUser,
    MerchantUser,
    require_roles,
)
from livecommerce.accounts.models import HostInvitation, Role, User
from livecommerce.accounts.schemas import (
    HostLinkIn,
    HostMerchantOut,
    HostOut,
    InvitationOut,
    MerchantOut,
    PasswordChangeIn,
    ProfileUpdate,
    RegisterIn,
    TokenOut,
    UserOut,
)
from livecommerce.accounts.throttle import Limit, Throttle
from livecommerce.deps import IdPath, ReadSessionDep, SessionDep, SettingsDep
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
    """The hosts who accepted this merchant's invitation (pending ones:
    ``GET /merchants/me/invitations``)."""
    merchant = await service.require_merchant_of(session=session, user=user)
    pairs = await service.list_hosts(session=session, merchant=merchant)
    return [
        HostOut(
            id=h.id or 0, email=h.email, display_name=h.display_name, linked_at=link.accepted_at
        )
        for h, link in pairs
    ]


@router.post(
    "/merchants/me/hosts", status_code=status.HTTP_201_CREATED, response_model=InvitationOut
)
async def invite_host(body: HostLinkIn, user: MerchantUser, session: SessionDep) -> InvitationOut:
    """Invite a host by email. The host streams for the merchant once they accept; until
    then the answer is ``pending``, whether or not the email has a host account."""
    merchant = await service.require_merchant_of(session=session, user=user)
    invitation = await service.invite_host(session=session, merchant=merchant, email=body.email)
    if invitation is None:
        return InvitationOut(
            id=None, email=service.normalize_email(body.email), status="accepted", invited_at=None
        )
    return _invitation_out(invitation)


def _invitation_out(invitation: HostInvitation) -> InvitationOut:
    return InvitationOut(
        id=invitation.id, email=invitation.email, status="pending", invited_at=invitation.created_at
    )


@router.get("/merchants/me/invitations", response_model=list[InvitationOut])
async def list_invitations(user: MerchantUser, session: SessionDep) -> list[InvitationOut]:
    """Invitations no host has answered yet."""
    merchant = await service.require_merchant_of(session=session, user=user)
    pending = await service.pending_invitations(session=session, merchant=merchant)
    return [_invitation_out(i) for i in pending]


@router.delete("/merchants/me/invitations/{invitation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def cancel_invitation(
    invitation_id: IdPath, user: MerchantUser, session: SessionDep
) -> Response:
    merchant = await service.require_merchant_of(session=session, user=user)
    await service.cancel_invitation(session=session, merchant=merchant, invitation_id=invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/merchants/me/hosts/{host_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unlink_host(host_id: IdPath, user: MerchantUser, session: SessionDep) -> Response:
    """The host stops streaming for this merchant, at once: on its streams too."""
    merchant = await service.require_merchant_of(session=session, user=user)
    await service.unlink_host(session=session, merchant=merchant, host_id=host_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


HostUser = Annotated[User, Depends(require_roles(Role.HOST))]


@router.get("/hosts/me/merchants", response_model=list[HostMerchantOut])
async def host_merchants(user: HostUser, session: SessionDep) -> list[HostMerchantOut]:
    """The merchants that invited this host (pending) and those it streams for (accepted)."""
    entries = await service.host_merchants(session=session, host=user)
    out = []
    for merchant, invitation, link in entries:
        merchant_out = MerchantOut.model_validate(merchant, from_attributes=True)
        if link is not None:
            out.append(
                HostMerchantOut(
                    merchant=merchant_out,
                    status="accepted",
                    invited_at=link.created_at,
                    accepted_at=link.accepted_at,
                )
            )
        elif invitation is not None:
            out.append(
                HostMerchantOut(
                    merchant=merchant_out, status="pending", invited_at=invitation.created_at
                )
            )
    return out


@router.post("/hosts/me/merchants/{merchant_id}/accept", response_model=HostMerchantOut)
async def accept_invitation(
    merchant_id: IdPath, user: HostUser, session: SessionDep
) -> HostMerchantOut:
    merchant, link = await service.accept_invitation(
        session=session, host=user, merchant_id=merchant_id
    )
    return HostMerchantOut(
        merchant=MerchantOut.model_validate(merchant, from_attributes=True),
        status="accepted",
        invited_at=link.created_at,
        accepted_at=link.accepted_at,
    )


@router.post("/hosts/me/merchants/{merchant_id}/decline", status_code=status.HTTP_204_NO_CONTENT)
async def decline_invitation(merchant_id: IdPath, user: HostUser, session: SessionDep) -> Response:
    await service.decline_invitation(session=session, host=user, merchant_id=merchant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/hosts/me/merchants/{merchant_id}", status_code=status.HTTP_204_NO_CONTENT)
async def leave_merchant(merchant_id: IdPath, user: HostUser, session: SessionDep) -> Response:
    """Stop streaming for a merchant, at once: its streams this host was running too."""
    await service.leave_merchant(session=session, host=user, merchant_id=merchant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
