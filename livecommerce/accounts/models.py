from __future__ import annotations

from datetime import datetime
from enum import StrEnum

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
    """A host who may stream for a merchant."""

    __tablename__ = "merchant_hosts"

    merchant_id: int = Field(foreign_key="merchants.id", primary_key=True, ondelete="CASCADE")
    host_id: int = Field(foreign_key="users.id", primary_key=True, index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
