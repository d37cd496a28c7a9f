from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from livecommerce.schemas import CurrencyCode, MoneyOut, StrictModel

MAX_BASKET_LINES = 50
MAX_LINE_QUANTITY = 1000
_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{5,22}$")

# strict: JSON numbers only ("2" and true are refused, not coerced).
Id = Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]


def _country(value: str) -> str:
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise PydanticCustomError("invalid_country", "two-letter ISO 3166 code")
    return code


class QuoteAddress(StrictModel):
    """Where to deliver; a quote needs only the country and the city."""

    country: str = Field(examples=["KZ"])
    city: str = Field(min_length=1, max_length=120, examples=["Almaty"])
    postal_code: str | None = Field(default=None, max_length=20)
    address_line1: str | None = Field(default=None, max_length=200)
    address_line2: str | None = Field(default=None, max_length=200)
    recipient_name: str | None = Field(default=None, max_length=120)
    phone: str | None = Field(default=None, max_length=24)
    tax_id: str | None = Field(
        default=None,
        max_length=32,
        description=(
            "The recipient's personal tax number (Kazakhstan IIN, Russia INN, Kyrgyzstan PIN, "
            "Uzbekistan PINFL), in the destination country's format; an order needs it where "
            "its customs rule asks for it (see the quote's consignee)"
        ),
        examples=["900101300123"],
    )

    _check_country = field_validator("country")(classmethod(lambda cls, v: _country(v)))

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _PHONE.fullmatch(value):
            raise PydanticCustomError("invalid_phone", "phone number")
        return value

    @field_validator("tax_id")
    @classmethod
    def _tax_id(cls, value: str | None) -> str | None:
        # Its shape depends on the country: checked against the corridor data when quoted.
        return value or None


class ShipTo(QuoteAddress):
    """A full delivery address, as an order needs it (customs checks the recipient)."""

    postal_code: str = Field(min_length=1, max_length=20)
    address_line1: str = Field(min_length=1, max_length=200)
    recipient_name: str = Field(min_length=1, max_length=120)
    phone: str = Field(max_length=24, examples=["+7 701 123 45 67"])


class BasketItem(StrictModel):
    product_id: Id
    quantity: int = Field(strict=True, ge=1, le=MAX_LINE_QUANTITY)


class QuoteIn(StrictModel):
    items: list[BasketItem] = Field(min_length=1, max_length=MAX_BASKET_LINES)
    ship_to: QuoteAddress
    currency: CurrencyCode | None = None
    stream_id: Id | None = None
    flash_sale_id: Id | None = None
    delivery: Literal["courier", "postal"] = Field(
        default="courier",
        description=(
            "How the parcels reach the buyer: by courier, or by the national post where the "
            "destination offers it (the quote's `deliveries`). Where customs tells them "
            "apart (Uzbekistan), it decides the duty-free allowance."
        ),
    )

    @field_validator("items")
    @classmethod
    def _distinct(cls, items: list[BasketItem]) -> list[BasketItem]:
        ids = [item.product_id for item in items]
        if len(set(ids)) != len(ids):
            raise PydanticCustomError("duplicate_product", "each product once per basket")
        return items


# Fields added after orders were first taken, and the value each had implicitly before.
# At that value they stay out of an order's idempotency fingerprint, so a retry sent before
# an upgrade still matches its first attempt after it.
_LATER_DEFAULTS: dict[str, Any] = {"delivery": "courier"}
_LATER_SHIP_TO_DEFAULTS: dict[str, Any] = {"tax_id": None}


class OrderIn(QuoteIn):
    ship_to: ShipTo
    payment_method: Literal["card", "cod"]

    def fingerprint(self) -> dict[str, Any]:
        """The body an Idempotency-Key is bound to (its JSON, less later defaults)."""
        body = self.model_dump(mode="json")
        for within, defaults in (
            (body, _LATER_DEFAULTS),
            (body["ship_to"], _LATER_SHIP_TO_DEFAULTS),
        ):
            for name, default in defaults.items():
                if name in within and within[name] == default:
                    del within[name]
        return body


class LegOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    mode: str = Field(examples=["rail"])
    from_: str = Field(alias="from", examples=["Duisburg"])
    to: str = Field(examples=["Khorgos"])
    days: int


class QuoteItemOut(BaseModel):
    product_id: int
    title: str
    quantity: int
    unit_price: MoneyOut
    line_total: MoneyOut
    flash_sale_id: int | None = None


class ShipmentItemOut(BaseModel):
    product_id: int
    quantity: int


class ShipmentQuoteOut(BaseModel):
    warehouse: str
    items: list[ShipmentItemOut]
    legs: list[LegOut]
    days: int
    eta: date
    shipping: MoneyOut
    duties: MoneyOut
    customs: dict[str, Any] | None = Field(
        description=(
            "How duties were assessed: rule, border date, customs value, allowance, excess, "
            "duty, VAT and the charges"
        )
    )


class RateOut(BaseModel):
    base: str
    quote: str
    rate: str
    source: str
    as_of: datetime


class DestinationOut(BaseModel):
    country: str
    city: str


class CustomsChargeOut(BaseModel):
    """One duty or import VAT charged at the border for one parcel."""

    warehouse: str
    type: Literal["duty", "vat"]
    rule: str = Field(description="The id of the customs rule or VAT rate applied")
    legal_basis: str | None
    border_date: date | None = Field(description="The day the parcel is expected at the border")
    base: MoneyOut | None = Field(description="What the rate applies to, in the rule's currency")
    rate: str | None = Field(description="A fraction, such as 0.05")
    rate_text: str | None
    basis: str = Field(description="rate | per_kg_minimum | within_allowance")
    minimum: MoneyOut | None = Field(description="The per-kg floor of the duty, if any")
    allowance: MoneyOut | None = Field(description="The duty-free limit of the rule")
    assessed: MoneyOut = Field(description="The amount in the rule's currency")
    amount: MoneyOut = Field(description="The amount charged, in the quote's currency")


class ConsigneeOut(BaseModel):
    """What the checkout must ask of the recipient for customs, beyond the address."""

    tax_id: Literal["required", "optional"] | None = Field(
        description=(
            "required: placing this order needs ship_to.tax_id; optional: a declaration may "
            "carry one; null: no declaration would (no border crossed, or no tax id there)"
        )
    )
    tax_id_name: str | None = Field(description="The document's name, such as IIN or ИИН")


class QuoteOut(BaseModel):
    currency: str
    destination: DestinationOut
    items: list[QuoteItemOut]
    subtotal: MoneyOut
    shipping: MoneyOut
    duties: MoneyOut = Field(description="Everything charged at the border: duty and import VAT")
    customs: list[CustomsChargeOut] = Field(
        description="The charges that make up duties (they add up to it exactly)"
    )
    total: MoneyOut
    shipments: list[ShipmentQuoteOut]
    rates: list[RateOut]
    delivery: Literal["courier", "postal"] = Field(
        default="courier", description="How the parcels reach the buyer, as asked"
    )
    deliveries: list[str] = Field(
        default=["courier"],
        description="The ways the destination can be delivered to (courier, postal)",
    )
    consignee: ConsigneeOut | None = Field(
        default=None, description="Quotes only: what placing the order asks of the recipient"
    )


class PaymentInstructions(BaseModel):
    method: Literal["card", "cod"]
    amount: MoneyOut
    text: str = Field(description="What the buyer does next, in the request's language")
    pay_url: str | None = Field(default=None, description="card: POST here to start paying")
    expires_at: datetime | None = Field(
        default=None, description="card: the stock is held until then"
    )


class OrderEventOut(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    at: datetime


class OrderOut(QuoteOut):
    id: int
    status: str
    status_text: str
    payment_method: str
    stream_id: int | None
    flash_sale_id: int | None
    ship_to: dict[str, Any]
    payment: PaymentInstructions
    created_at: datetime
    events: list[OrderEventOut]


class PaymentOut(BaseModel):
    id: int
    order_id: int
    provider: str
    intent_id: str
    status: str
    amount: MoneyOut
    client_secret: str | None = Field(
        default=None, description="Handed to the provider's card form; never logged"
    )
    confirm_url: str | None = Field(default=None, description="sandbox: where the card form posts")


class EstimateDestinationOut(BaseModel):
    country: str
    city: str
    city_key: str | None = Field(description="The network's city, or null for one off it")


class EstimateOut(BaseModel):
    """One unit of a product delivered to a city: the figures of a one-unit quote."""

    product_id: int
    destination: EstimateDestinationOut
    currency: str
    eta: date
    days: int
    warehouse: str
    unit_price: MoneyOut
    shipping: MoneyOut
    duties: MoneyOut
    total: MoneyOut
    customs: dict[str, Any] | None = Field(
        description=(
            "How duties were assessed: rule, border date, customs value, allowance, excess, "
            "duty, VAT and the charges"
        )
    )
    monthly_allowance: bool = Field(
        description="Duties depend on what the recipient imported earlier this month"
    )
    personal: bool = Field(description="Assessed against the signed-in buyer's earlier imports")
    rates: list[RateOut]
