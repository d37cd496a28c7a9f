from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import UTCDateTime, utcnow


class Notification(SQLModel, table=True):
    """A status change told to one user, kept so a reconnecting client misses nothing.

    Language-neutral: a kind, a status and its parameters, rendered in the reader's locale.
    ``seq`` numbers one user's notices 1, 2, 3... in commit order (see ``NotificationCounter``),
    so a client that has seen ``n`` has seen everything up to ``n``.
    """

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("user_id", "seq", name="uq_notifications_user_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    seq: int
    kind: str = Field(max_length=32)  # "order_status", "shipment_status"
    order_id: int | None = Field(default=None, foreign_key="orders.id", ondelete="CASCADE")
    shipment_id: int | None = Field(default=None)
    data: dict[str, Any] = Field(sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class NotificationCounter(SQLModel, table=True):
    """The last ``seq`` given to a user's notices.

    Raised with one upsert whose row lock lasts until the transaction ends: a second
    transaction notifying the same user waits for the first to commit, so one user's notices
    commit in ``seq`` order and never leave a gap that fills in later.
    """

    __tablename__ = "notification_counters"

    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    last_seq: int = 0
