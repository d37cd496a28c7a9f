import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from livecommerce.config import SUPPORTED_LOCALES
from livecommerce.i18n.locales import BABEL_LOCALE
from livecommerce.i18n.messages import default_locales_dir, load_catalogs, translate_plural

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _catalog(locale: str):  # type: ignore[no-untyped-def]
    path: Path = default_locales_dir() / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        return read_po(fh, locale=BABEL_LOCALE[locale])


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_message_is_translated_with_its_placeholders(locale: str) -> None:
    """No message is untranslated or fuzzy, and no translation drops a %(placeholder)s."""
    template_path = default_locales_dir() / "messages.pot"
    with template_path.open("rb") as fh:
        template_ids = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}
    catalog = _catalog(locale)
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
    assert template_ids <= ids, f"{locale}: run pybabel update (locales/README.md)"
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        source = message.id if isinstance(message.id, str) else message.id[-1]
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            assert text, f"{locale}: untranslated {message.id!r}"
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(source)), text


@pytest.mark.parametrize(
    ("num", "expected"),
    [
        (1, "товар"),
        (21, "товар"),
        (2, "товара"),
        (4, "товара"),
        (24, "товара"),
        (5, "товаров"),
        (11, "товаров"),
        (12, "товаров"),
        (111, "товаров"),
        (0, "товаров"),
    ],
)
def test_russian_plural_categories(num: int, expected: str) -> None:
    """Russian uses one/few/many: 1 and 21 товар, 2-4 and 24 товара, 5-20, 11 and 111 товаров."""
    load_catalogs()
    text = translate_plural("ru", "%(num)d product imported", "%(num)d products imported", num)
    assert text.split()[-1] == expected
    assert str(num) in text


def test_other_locales_use_their_plural_rules() -> None:
    """English has one/other; Chinese one form; Kazakh and Uzbek render the number."""
    load_catalogs()
    singular, plural = "%(num)d row rejected", "%(num)d rows rejected"
    assert translate_plural("en", singular, plural, 1) == "1 row rejected"
    assert translate_plural("en", singular, plural, 3) == "3 rows rejected"
    for locale in ("kk", "uz", "zh"):
        text = translate_plural(locale, singular, plural, 7)
        assert "7" in text and "rejected" not in text
