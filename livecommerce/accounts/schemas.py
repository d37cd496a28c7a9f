from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, EmailStr, Field

from livecommerce.config import LocaleCode
from livecommerce.schemas import CurrencyCode, StrictModel

# Only the bounds of a sane request here; the policy (minimum length, common passwords) is
# the service's, with its own error codes (accounts/passwords.py).
Password = Field(min_length=1, max_length=256)


class RegisterIn(StrictModel):
    email: EmailStr
    password: str = Password
    display_name: str = Field(min_length=1, max_length=80)
    role: Literal["merchant", "host", "viewer"]
    locale: LocaleCode | None = None
    currency: CurrencyCode | None = None
    merchant_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="Merchants only; defaults to display_name.",
    )


class ProfileUpdate(StrictModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=80)
    locale: LocaleCode | None = None
    currency: CurrencyCode | None = None


class PasswordChangeIn(StrictModel):
    current_password: str = Password
    new_password: str = Password


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class MerchantOut(BaseModel):
    id: int
    name: str
    currency: str


class UserOut(BaseModel):
    id: int | None
    email: str | None
    display_name: str
    role: str
    locale: str
    currency: str
    created_at: datetime | None
    merchant: MerchantOut | None = None
    streams_for: list[MerchantOut] = Field(
        default_factory=list, description="Hosts: the merchants this host streams for."
    )


class HostLinkIn(StrictModel):
    email: EmailStr


class HostOut(BaseModel):
    """A host who accepted the merchant's invitation."""

    id: int
    email: str
    display_name: str
    status: Literal["accepted"] = "accepted"
    linked_at: datetime = Field(description="When the host accepted.")


class InvitationOut(BaseModel):
    """A merchant's invitation as the merchant sees it: the same whether or not the email
    has a (host) account, until a host accepts it."""

    id: int | None = Field(
        description="The pending invitation's id (to cancel it); null once accepted."
    )
    email: str
    status: Literal["pending", "accepted"]
    invited_at: datetime | None


class HostMerchantOut(BaseModel):
    """A merchant as one of its hosts sees it: invited (pending) or streamed for (accepted)."""

    merchant: MerchantOut
    status: Literal["pending", "accepted"]
    invited_at: datetime
    accepted_at: datetime | None = None
