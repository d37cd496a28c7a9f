from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import UTCDateTime, utcnow


class Notification(SQLModel, table=True):
    """A status change told to one user, kept so a reconnecting client misses nothing.

    Language-neutral: a message id and its parameters, rendered in the reader's locale.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id", "user_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    kind: str = Field(max_length=32)  # "order_status", "shipment_status"
    order_id: int | None = Field(default=None, foreign_key="orders.id", ondelete="CASCADE")
    shipment_id: int | None = Field(default=None)
    data: dict[str, Any] = Field(sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
