"""The recipient customs names: when a parcel's rule asks for a tax id, and what one looks like.

The destination country sets the shape of the number (``tax_id`` in the corridor file: a
Kazakh IIN has 12 digits, a Kyrgyz PIN 14) and the customs rule sets when it is needed
(``consignee.tax_id``: always, only when duty or import VAT is charged, or never). A quote
never needs it; placing an order does, per parcel, and both ways of placing an order
(``place_order`` and ``place_together``) check it here, on the order's own landed cost.

Only the declaration keeps the number whole (it is what is filed); everything a merchant
or a buyer reads shows it through ``mask_tax_id``.
"""

from __future__ import annotations

from typing import Any

from livecommerce.errors import ValidationFailed
from livecommerce.i18n.messages import N_, translate
from livecommerce.logistics.network import Network, TaxIdFormat
from livecommerce.orders.quotes import Quote, QuotedShipment
from livecommerce.orders.schemas import QuoteAddress

SHOWN_DIGITS = 4


class _TaxIdError(ValidationFailed):
    def __init__(self, tax_id: TaxIdFormat | None, **details: Any) -> None:
        super().__init__(details={"field": "ship_to.tax_id", **details})
        self.format = tax_id

    def localized(self, locale: str) -> str:
        # The document's own name in the reader's language: IIN, ИИН, ЖСН.
        name = self.format.name(locale) if self.format else "—"
        return translate(locale, self.message, name=name)


class BadTaxId(_TaxIdError):
    code = "bad_tax_id"
    message = N_("This is not a valid %(name)s: check the number.")


class TaxIdRequired(_TaxIdError):
    code = "tax_id_required"
    message = N_("A tax id (%(name)s) is required for customs for this order.")


def mask_tax_id(value: str | None) -> str | None:
    """All but the last four characters hidden: enough to tell two recipients apart."""
    if not value:
        return value
    hidden = max(0, len(value) - SHOWN_DIGITS)
    return "•" * hidden + value[hidden:]


def masked_ship_to(ship_to: dict[str, Any]) -> dict[str, Any]:
    if not ship_to.get("tax_id"):
        return ship_to
    return {**ship_to, "tax_id": mask_tax_id(ship_to["tax_id"])}


def check_tax_id(network: Network, ship_to: QuoteAddress) -> None:
    """A given tax id must have the destination country's shape (``BadTaxId``)."""
    if not ship_to.tax_id:
        return
    found = network.tax_id_format(ship_to.country)
    if found is not None and not found.matches(ship_to.tax_id):
        raise BadTaxId(found, country=ship_to.country)


def _needing(landed: Quote) -> list[QuotedShipment]:
    """The parcels whose rule asks for the recipient's tax id, given what they are charged."""
    return [
        s
        for s in landed.shipments
        if s.customs is not None and s.customs.rule.consignee.needs_tax_id(due=s.customs.total > 0)
    ]


def check_consignee(network: Network, landed: Quote, ship_to: QuoteAddress) -> None:
    """What placing an order needs of the recipient beyond the address: a tax id of the
    right shape, where a parcel's customs rule asks for one (``TaxIdRequired``)."""
    check_tax_id(network, ship_to)
    if ship_to.tax_id:
        return
    needing = _needing(landed)
    if needing:
        country = landed.destination.country
        first = needing[0]
        assert first.customs is not None
        raise TaxIdRequired(
            network.tax_id_format(country),
            country=country,
            rule=first.customs.rule.id,
            warehouses=[s.warehouse for s in needing],
        )


def consignee_of(network: Network, landed: Quote, locale: str) -> dict[str, Any]:
    """What a checkout should ask of the recipient for this quote (ConsigneeOut's JSON).

    ``tax_id``: "required" when a parcel's rule asks for it at these figures, "optional"
    when a parcel is declared and the destination has a tax id it may carry, None when no
    declaration would name one (no parcel crosses a border, or the country has none).
    """
    found = network.tax_id_format(landed.destination.country)
    name = found.name(locale) if found else None
    if found is None or not any(s.customs is not None for s in landed.shipments):
        return {"tax_id": None, "tax_id_name": name}
    return {"tax_id": "required" if _needing(landed) else "optional", "tax_id_name": name}
