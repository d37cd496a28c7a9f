"""The shapes of the notices API (``GET /api/v1/me/notifications``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class NoticeOut(BaseModel):
    """One order or parcel notice; ``/ws/me`` sends the same as a frame's ``data``."""

    seq: int = Field(description="the notice's number for this user: resume after it")
    kind: str = Field(description="order_status or shipment_status")
    order_id: int | None
    shipment_id: int | None
    status: str = Field(description="the status code the order or parcel moved to")
    status_text: str = Field(description="the status in the reader's language")
    text: str = Field(description="the whole notice in the reader's language")
    tracking_number: str | None
    at: str = Field(description="when the change happened (ISO 8601)")


class NoticePage(BaseModel):
    items: list[NoticeOut]
    last_seq: int = Field(description="pass as ``after`` for the next page")
