"""The browser client's texts, one module per page, all in the server's message catalogs.

Each module holds ``STRINGS = {key: N_("English text")}``; ``/web/i18n/<locale>.json``
serves every key translated, so the pages use the same catalogs (and the same completeness
test) as the API.
"""

from __future__ import annotations

from functools import cache

from babel import Locale

from livecommerce.i18n.locales import BABEL_LOCALE
from livecommerce.i18n.messages import translate
from livecommerce.web.strings import common, host, merchant, viewer


def all_strings() -> dict[str, str]:
    merged: dict[str, str] = {}
    for module in (common, viewer, host, merchant):
        for key, text in module.STRINGS.items():
            if key in merged and merged[key] != text:
                raise ValueError(f"web string {key!r} is defined twice with different texts")
            merged[key] = text
    return merged


@cache
def translated(locale: str) -> dict[str, str]:
    texts = {key: translate(locale, text) for key, text in all_strings().items()}
    texts.update(calendar(locale))
    return texts


def calendar(locale: str) -> dict[str, str]:
    """Month names and the day-month pattern from CLDR (through Babel): the browser's own
    date formatting lacks some of our locales (Chromium shows Uzbek dates as "M11 28")."""
    babel = Locale.parse(BABEL_LOCALE[locale])
    months = babel.months["format"]["wide"]
    out = {f"month.{n}": str(months[n]) for n in range(1, 13)}
    out["date.day_month"] = str(babel.datetime_skeletons["MMMMd"].pattern)
    return out
