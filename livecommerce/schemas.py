"""Shapes shared by every domain's API: money, translatable text, pages."""

from __future__ import annotations

import re
from contextvars import ContextVar
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    model_validator,
)
from pydantic_core import PydanticCustomError

from livecommerce.config import SUPPORTED_LOCALES
from livecommerce.i18n.money import Money, format_money, is_supported_currency

T = TypeVar("T")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CHECKED: ContextVar[bool] = ContextVar("control_characters_checked", default=False)


def has_control_characters(value: object) -> bool:
    """NUL and other C0 controls (tab and newlines are fine) anywhere in a JSON-like value."""
    if isinstance(value, str):
        return _CONTROL.search(value) is not None
    if isinstance(value, dict):
        return any(has_control_characters(k) or has_control_characters(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_control_characters(v) for v in value)
    return False


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error rather than silently dropped, and no text
    may carry control characters (PostgreSQL refuses NUL; none belongs in a product)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="wrap")
    @classmethod
    def _no_control_characters(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        # Checked once, by the outermost model, for all it contains: the nested models it
        # validates (inside ``handler``) skip their own walk of what was just walked.
        if _CHECKED.get():
            return handler(data)
        if has_control_characters(data):
            raise PydanticCustomError("invalid_characters", "text contains control characters")
        token = _CHECKED.set(True)
        try:
            return handler(data)
        finally:
            _CHECKED.reset(token)


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not is_supported_currency(value.strip().upper()):
        raise PydanticCustomError("unsupported_currency", "unsupported currency")
    return value.strip().upper()


CurrencyCode = Annotated[str, BeforeValidator(_currency)]


def _decimal_amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise PydanticCustomError("invalid_amount", "amount must be a decimal string")
    try:
        # str() first: a float like 0.1 becomes "0.1", not its binary expansion.
        amount = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation as exc:
        raise PydanticCustomError("invalid_amount", "amount must be a decimal string") from exc
    # Bounded exponent: "1e-999999999" would otherwise underflow to zero further down.
    if not amount.is_finite() or not -12 <= amount.adjusted() <= 15:
        if amount.is_finite() and amount.is_zero():
            return amount
        raise PydanticCustomError("invalid_amount", "amount must be a decimal string")
    return amount


class MoneyIn(StrictModel):
    amount: Annotated[Decimal, BeforeValidator(_decimal_amount)]
    currency: CurrencyCode

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)


class MoneyOut(BaseModel):
    amount: str = Field(examples=["12990.00"])
    currency: str = Field(examples=["KZT"])
    formatted: str = Field(examples=["12 990 ₸"])

    @classmethod
    def of(cls, money: Money, locale: str) -> MoneyOut:
        return cls(
            amount=money.amount_str(),
            currency=money.currency,
            formatted=format_money(money, locale),
        )


def money_json(money: Money, locale: str) -> dict[str, str]:
    """``MoneyOut.of(money, locale)``'s JSON, for renders that build JSON without models."""
    return {
        "amount": money.amount_str(),
        "currency": money.currency,
        "formatted": format_money(money, locale),
    }


def check_translations(
    value: Any, max_length: int, *, required: bool, allow_null: bool = False
) -> dict[str, str | None]:
    """Validate a ``{"ru": "...", "kk": "..."}`` map keyed by supported locales.

    Blank texts are dropped; with ``allow_null`` (PATCH) a null or blank text is kept as None,
    meaning "remove this language".
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise PydanticCustomError("invalid_translations", "must be an object keyed by language")
    cleaned: dict[str, str | None] = {}
    for key, text in value.items():
        if key not in SUPPORTED_LOCALES:
            raise PydanticCustomError(
                "unsupported_language", "unsupported language {lang}", {"lang": str(key)}
            )
        if text is not None and not isinstance(text, str):
            raise PydanticCustomError("invalid_translations", "text must be a string")
        text = (text or "").strip()
        if len(text) > max_length:
            raise PydanticCustomError(
                "text_too_long", "text longer than {max}", {"max": max_length}
            )
        if text:
            cleaned[key] = text
        elif allow_null:
            cleaned[key] = None
    if required and not any(cleaned.values()):
        raise PydanticCustomError("translation_required", "at least one language is required")
    return cleaned


def translatable(max_length: int, *, required: bool, allow_null: bool = False) -> Any:
    return BeforeValidator(
        lambda value: check_translations(
            value, max_length, required=required, allow_null=allow_null
        )
    )


class Page(BaseModel, Generic[T]):
    items: list[T]
    page: int
    page_size: int
    total: int
    pages: int
