"""Locale negotiation and translated-content fallback.

Content locales are the five the product speaks. Regional variants a client may send
(``kk-KZ``, ``uz_Latn_UZ``, ``zh-Hans-CN``) collapse onto them.
"""

from __future__ import annotations

from collections.abc import Mapping

from livecommerce.config import SUPPORTED_LOCALES

# Market currency per locale (API.md).
DEFAULT_CURRENCY = {"kk": "KZT", "ru": "RUB", "uz": "UZS", "en": "EUR", "zh": "CNY"}

# The Babel/CLDR locale used to format numbers and plurals for each content locale.
BABEL_LOCALE = {"kk": "kk_KZ", "ru": "ru_RU", "uz": "uz_Latn_UZ", "en": "en", "zh": "zh_Hans_CN"}

# Viewers of Kazakh and Uzbek streams read Russian more often than English, so Russian comes
# before English in their chains (DOMAIN.md).
FALLBACK_CHAIN = {
    "kk": ("kk", "ru", "en"),
    "uz": ("uz", "ru", "en"),
    "ru": ("ru", "en"),
    "en": ("en", "ru"),
    "zh": ("zh", "en", "ru"),
}


def normalize_locale(value: str | None) -> str | None:
    """Map a client-supplied locale id onto a supported content locale, or None."""
    if not value:
        return None
    primary = value.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in SUPPORTED_LOCALES else None


def parse_accept_language(header: str | None) -> list[str]:
    """Supported locales from an Accept-Language header, best first (q=0 excluded)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, val = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(val)
                except ValueError:
                    quality = 0.0
        locale = normalize_locale(tag)
        if locale and quality > 0:
            ranked.append((-quality, index, locale))
    seen: list[str] = []
    for _, _, locale in sorted(ranked):
        if locale not in seen:
            seen.append(locale)
    return seen


def pick_translation(texts: Mapping[str, str] | None, locale: str) -> str | None:
    """The text for ``locale`` along its fallback chain, else any text there is."""
    if not texts:
        return None
    for candidate in FALLBACK_CHAIN.get(locale, (locale,)):
        text = texts.get(candidate)
        if text:
            return text
    for candidate in SUPPORTED_LOCALES:
        text = texts.get(candidate)
        if text:
            return text
    return None
