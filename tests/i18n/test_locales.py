import pytest

from livecommerce.i18n.locales import normalize_locale, parse_accept_language, pick_translation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("kk_KZ", "kk"),
        ("uz-Latn-UZ", "uz"),
        ("zh-Hans-CN", "zh"),
        ("RU", "ru"),
        ("fr", None),
        ("", None),
    ],
)
def test_normalize_locale(raw: str, expected: str | None) -> None:
    """Regional variants collapse onto the five content locales; others are unknown."""
    assert normalize_locale(raw) == expected


def test_accept_language_orders_by_quality_and_skips_unsupported() -> None:
    """Accept-Language picks supported locales by q-value, ignoring unknown ones and q=0."""
    header = "fr-FR, de;q=0.9, kk-KZ;q=0.5, ru;q=0.8, uz;q=0"
    assert parse_accept_language(header) == ["ru", "kk"]


@pytest.mark.parametrize(
    ("texts", "locale", "expected"),
    [
        ({"ru": "Крем", "en": "Cream"}, "kk", "Крем"),  # kk -> ru
        ({"en": "Cream"}, "uz", "Cream"),  # uz -> ru -> en
        ({"ru": "Крем", "uz": "Krem"}, "uz", "Krem"),
        ({"zh": "保湿霜"}, "ru", "保湿霜"),  # last resort: any text there is
        ({"en": "Cream", "ru": "Крем"}, "zh", "Cream"),
        ({}, "ru", None),
    ],
)
def test_fallback_chain(texts: dict[str, str], locale: str, expected: str | None) -> None:
    """Translated text follows uz->ru->en, kk->ru->en, ru->en, then anything available."""
    assert pick_translation(texts, locale) == expected
