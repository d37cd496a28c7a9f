"""Notices as a buyer reads them, in their language: the REST page and the ``/ws/me`` frames.

A notice stores its status as a code; the words for it (``status_text``) are the labels of
the domain that wrote the notice, handed in as ``Labels`` (``app.state.notice_labels``,
see ``create_app``), so that notifications read no order or shipment code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from livecommerce.i18n.messages import N_, translate
from livecommerce.notifications import service
from livecommerce.notifications.models import Notification
from livecommerce.notifications.schemas import NoticePage
from livecommerce.rooms.render import frame

ORDER_TEXT = N_("Order %(order)s: %(status)s")
SHIPMENT_TEXT = N_("Order %(order)s, parcel from %(warehouse)s: %(status)s")

# Notice kind -> status code -> the msgid that names the status (``app.state.notice_labels``).
Labels = Mapping[str, Mapping[str, str]]


def render_notice(notice: Notification, locale: str, labels: Labels) -> dict[str, Any]:
    data = notice.data
    status = str(data.get("status", ""))
    order = f"#{notice.order_id}"
    # A status without a label (none expected) shows as its code.
    label = translate(locale, labels.get(notice.kind, {}).get(status, status))
    if notice.kind == service.ORDER_STATUS:
        text = translate(locale, ORDER_TEXT, order=order, status=label)
    else:
        text = translate(
            locale, SHIPMENT_TEXT, order=order, warehouse=str(data.get("warehouse")), status=label
        )
    return {
        "seq": notice.seq,
        "kind": notice.kind,
        "order_id": notice.order_id,
        "shipment_id": notice.shipment_id,
        "status": status,
        "status_text": label,
        "text": text,
        "tracking_number": data.get("tracking_number"),
        "at": notice.created_at.isoformat(),
    }


def notice_frame(notice: Notification, locale: str, labels: Labels) -> str:
    return frame(
        notice.kind,
        render_notice(notice, locale, labels),
        seq=notice.seq,
        ts=notice.created_at.isoformat(),
    )


def render_page(
    notices: Sequence[Notification], locale: str, labels: Labels, *, after: int
) -> NoticePage:
    """A page of notices after ``after``; ``last_seq`` is where the next page starts."""
    return NoticePage.model_validate(
        {
            "items": [render_notice(n, locale, labels) for n in notices],
            "last_seq": notices[-1].seq if notices else after,
        }
    )
