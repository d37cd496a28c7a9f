from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import UTCDateTime, utcnow


class Role(StrEnum):
    MERCHANT = "merchant"
    HOST = "host"
    VIEWER = "viewer"
    ADMIN = "admin"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    # Stored lower-cased so that sign-in is case-insensitive and the unique index holds.
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    display_name: str = Field(max_length=80)
    role: str = Field(max_length=16)
    locale: str = Field(max_length=8)
    currency: str = Field(max_length=3)
    is_active: bool = Field(default=True)
    # Carried in every access token as ``ver``; signing out bumps it, and a token whose
    # ``ver`` is not the row's is refused. Compared where the row is read anyway.
    token_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Merchant(SQLModel, table=True):
    """The business a merchant account owns: catalog, stock and orders hang off it."""

    __tablename__ = "merchants"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", unique=True, index=True)
    name: str = Field(max_length=120)
    currency: str = Field(max_length=3)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MerchantHost(SQLModel, table=True):
    """A host who streams for a merchant: the host accepted the merchant's invitation.

    A row is the host's consent; it is the only thing that lets a merchant put the host on
    a stream or the host act for the merchant, and it is checked again at every action.
    """

    __tablename__ = "merchant_hosts"

    merchant_id: int = Field(foreign_key="merchants.id", primary_key=True, ondelete="CASCADE")
    host_id: int = Field(foreign_key="users.id", primary_key=True, index=True, ondelete="CASCADE")
    # When the merchant invited the host (for links made before invitations: when linked).
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    accepted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class HostInvitation(SQLModel, table=True):
    """A merchant's invitation to an email, waiting for a host account with it to answer.

    Kept by email, whether or not such a host exists, so that inviting tells the merchant
    nothing about who has an account; a host sees the invitations to their own email.
    """

    __tablename__ = "host_invitations"
    __table_args__ = (UniqueConstraint("merchant_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    # The unique (merchant_id, email) index serves lookups by merchant as well.
    merchant_id: int = Field(foreign_key="merchants.id", ondelete="CASCADE")
    # Normalized as users.email is (lower-cased), so it matches the host's account.
    email: str = Field(max_length=254, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
