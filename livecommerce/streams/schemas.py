from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, HttpUrl, field_validator

from livecommerce.catalog.schemas import Price, Title
from livecommerce.config import SUPPORTED_LOCALES
from livecommerce.schemas import MoneyOut, StrictModel, translatable

ANNOUNCEMENT_MAX = 500
MAX_FLASH_SALE_S = 6 * 3600
MAX_FLASH_SALE_QUANTITY = 1_000_000
MAX_BLOCKED_WORDS = 500
MAX_MODERATION_S = 30 * 24 * 3600

Announcement = Annotated[dict[str, str], translatable(ANNOUNCEMENT_MAX, required=True)]


class StreamCreate(StrictModel):
    title: Title
    languages: list[str] = Field(default_factory=lambda: ["kk", "ru", "uz"], max_length=5)
    scheduled_at: datetime | None = None
    playback_url: HttpUrl | None = Field(
        default=None, description="HLS or MP4 address of the video, from the streaming service"
    )
    # A merchant names the host it links; a host linked to several merchants names one.
    merchant_id: int | None = Field(default=None, strict=True, ge=1, le=2**31 - 1)
    host_id: int | None = Field(default=None, strict=True, ge=1, le=2**31 - 1)

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        cleaned: list[str] = []
        for code in value:
            code = code.strip().lower()
            if code not in SUPPORTED_LOCALES:
                raise ValueError(f"unsupported language {code!r}")
            if code not in cleaned:
                cleaned.append(code)
        if not cleaned:
            raise ValueError("at least one language")
        return cleaned

    @field_validator("scheduled_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("scheduled_at needs a time zone offset")
        return value


class PinIn(StrictModel):
    product_id: int | None = Field(strict=True, ge=1, le=2**31 - 1, description="null unpins")


class AnnouncementIn(StrictModel):
    text: Announcement


class FlashSaleIn(StrictModel):
    product_id: int = Field(strict=True, ge=1, le=2**31 - 1)
    price: Price
    quantity: int = Field(strict=True, ge=1, le=MAX_FLASH_SALE_QUANTITY)
    duration_s: int = Field(strict=True, ge=10, le=MAX_FLASH_SALE_S)
    per_customer_limit: int | None = Field(
        default=None, strict=True, ge=1, le=MAX_FLASH_SALE_QUANTITY
    )


class BlockedWordsIn(StrictModel):
    words: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        max_length=MAX_BLOCKED_WORDS
    )


class ModerationIn(StrictModel):
    user_id: int = Field(strict=True, ge=1, le=2**31 - 1)
    action: Literal["mute", "ban", "unmute", "unban"]
    duration_s: int | None = Field(default=None, strict=True, ge=10, le=MAX_MODERATION_S)


class ProductCard(BaseModel):
    id: int
    sku: str
    title: str
    price: MoneyOut
    image_url: str | None


class FlashSaleOut(BaseModel):
    id: int
    status: Literal["scheduled", "active", "sold_out", "ended"]
    product: ProductCard
    price: MoneyOut
    quantity: int
    remaining: int
    per_customer_limit: int | None = None
    starts_at: datetime
    ends_at: datetime


class LocaleConversion(BaseModel):
    locale: str
    viewers: int
    buyers: int
    conversion: float | None  # buyers / viewers, None without viewers


class StreamSales(BaseModel):
    """Rolled up periodically by a worker; ``rolled_up_at`` says how fresh it is."""

    orders: int
    buyers: int
    gmv: list[MoneyOut]
    unique_viewers: int
    conversion: float | None
    by_locale: list[LocaleConversion]
    rolled_up_at: datetime


class StreamStats(BaseModel):
    """``viewer_count``, ``last_seq`` and ``epoch`` are live, from the rooms; they are null
    while the realtime layer cannot be reached."""

    viewer_count: int | None
    peak_viewers: int
    chat_messages: int
    last_seq: int | None
    epoch: str | None = None  # of the room's history, which last_seq counts in
    sales: StreamSales | None = None  # None until the first rollup


class StreamOut(BaseModel):
    id: int
    merchant_id: int
    host_id: int
    host_name: str
    title: str
    languages: list[str]
    status: str
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    playback_url: str | None = None
    pinned_product: ProductCard | None
    flash_sale: FlashSaleOut | None
    stats: StreamStats | None = None
