"""Message catalogs: ``locales/<lang>/LC_MESSAGES/messages.po`` compiled in memory at start.

Nothing compiled is written to disk or committed: the ``.po`` files are the source of truth
and are turned into ``Translations`` objects when the catalogs are first used.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from livecommerce.config import SUPPORTED_LOCALES
from livecommerce.i18n.locales import BABEL_LOCALE

_lock = threading.Lock()
_catalogs: dict[str, NullTranslations] = {}


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated later, where the locale is known."""
    return message


def default_locales_dir() -> Path:
    packaged = Path(__file__).resolve().parent.parent / "_locales"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "locales"


def compile_catalog(po_path: Path, locale: str) -> Translations:
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=BABEL_LOCALE[locale])
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(fp=buffer, domain="messages")


def load_catalogs(locales_dir: Path | None = None) -> dict[str, NullTranslations]:
    """Compile every locale's catalog; a missing catalog is an installation error."""
    base = locales_dir or default_locales_dir()
    loaded: dict[str, NullTranslations] = {}
    for locale in SUPPORTED_LOCALES:
        po_path = base / locale / "LC_MESSAGES" / "messages.po"
        if not po_path.exists():
            raise RuntimeError(f"message catalog missing: {po_path}")
        loaded[locale] = compile_catalog(po_path, locale)
    with _lock:
        _catalogs.clear()
        _catalogs.update(loaded)
    return loaded


def _catalog(locale: str) -> NullTranslations:
    if not _catalogs:
        load_catalogs()
    return _catalogs.get(locale) or _catalogs.get("en") or NullTranslations()


def translate(locale: str, message: str, **params: Any) -> str:
    text = _catalog(locale).gettext(message)
    return text % params if params else text


def translate_plural(locale: str, singular: str, plural: str, num: int, **params: Any) -> str:
    """Plural message with CLDR categories of ``locale`` (Russian one/few/many...)."""
    text = _catalog(locale).ngettext(singular, plural, num)
    return text % {"num": num, **params}
