from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import UTCDateTime, utcnow


class StreamStatus(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


class Stream(SQLModel, table=True):
    """One live session of a merchant, driven by a host; its room is ``stream:<id>``."""

    __tablename__ = "streams"

    id: int | None = Field(default=None, primary_key=True)
    merchant_id: int = Field(foreign_key="merchants.id", index=True)
    host_id: int = Field(foreign_key="users.id", index=True)
    title: dict[str, str] = Field(sa_type=JSON)
    # The languages the host speaks on air; viewers may still pick any supported locale.
    languages: list[str] = Field(sa_type=JSON)
    status: str = Field(default=StreamStatus.SCHEDULED, max_length=16, index=True)
    scheduled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    pinned_product_id: int | None = Field(default=None, foreign_key="products.id")
    # Where players fetch the video (an HLS or MP4 URL from the streaming service); the
    # rooms carry everything else, so a stream without one still works, without video.
    playback_url: str | None = Field(default=None, max_length=500)
    # Chat messages containing one of these (case-folded substrings) are refused.
    blocked_words: list[str] = Field(default_factory=list, sa_type=JSON)
    peak_viewers: int = Field(default=0)
    chat_messages: int = Field(default=0)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ModerationAction(StrEnum):
    MUTE = "mute"
    BAN = "ban"


class StreamModeration(SQLModel, table=True):
    """A user muted (may watch, not chat) or banned (may not watch) in one stream."""

    __tablename__ = "stream_moderation"

    stream_id: int = Field(foreign_key="streams.id", primary_key=True, ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    action: str = Field(max_length=8)
    until: datetime | None = Field(default=None, sa_type=UTCDateTime)  # None: for the stream
    by_user_id: int = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StreamViewer(SQLModel, table=True):
    """Someone who watched a stream (once, however often they came back), with the
    language they watched in: the base of unique-viewer counts and conversion by locale."""

    __tablename__ = "stream_viewers"

    stream_id: int = Field(foreign_key="streams.id", primary_key=True, ondelete="CASCADE")
    viewer_key: str = Field(primary_key=True, max_length=64)  # "user:<id>" or a guest subject
    locale: str = Field(max_length=8)
    first_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StreamStatsRollup(SQLModel, table=True):
    """A stream's sales figures, rolled up periodically by a worker (not per request)."""

    __tablename__ = "stream_stats"

    stream_id: int = Field(foreign_key="streams.id", primary_key=True, ondelete="CASCADE")
    data: dict[str, Any] = Field(sa_type=JSON)
    rolled_up_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
