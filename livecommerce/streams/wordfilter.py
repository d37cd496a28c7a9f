"""Blocked words, matched the way a viewer would try to get around them.

A stream's blocked words are compared with a chat message on a *skeleton* of both, so that
what looks or reads the same matches the same:

- Unicode compatibility forms are folded (NFKC: full-width letters, ligatures), then case
  (``casefold``), and marks that combine with a letter are dropped (``д̆`` reads ``д``).
- Letters that look alike in Latin and Cyrillic map to one of them (``a`` and ``а``, ``p``
  and ``р``, ...), and a few digits that stand in for letters to the letter (``0`` for
  ``о``, ``3`` for ``з``): ``дурaк`` with a Latin ``a`` is ``дурак``. The same map is applied
  to the words, so a Latin blocked word still matches its own spelling.
- Invisible characters (zero-width spaces and joiners, soft hyphens) are removed.
- Letters spelled out one at a time, ``д у р а к`` or ``д.у.р.а.к``, are joined back into
  the word they spell. Ordinary words keep their spaces, so a blocked word never matches
  across two words that happen to end and start with its parts.

Matching is then a substring test on the skeleton, as before: ``spam`` blocks ``spammer``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

# Latin letters (and digits) that are drawn like a Cyrillic letter: each maps to that letter.
_LOOK_ALIKE = str.maketrans(
    {
        "a": "а",
        "b": "в",
        "c": "с",
        "e": "е",
        "h": "н",
        "i": "і",
        "k": "к",
        "m": "м",
        "o": "о",
        "p": "р",
        "t": "т",
        "x": "х",
        "y": "у",
        "0": "о",
        "3": "з",
        "6": "б",
    }
)
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
# A run of at least three single letters, each followed by separators (spaces, dots,
# dashes, underscores, asterisks): "д у р а к", "д.у.р.а.к", "д-у-р-а-к".
_SPELLED = re.compile(r"(?<!\w)(?:\w[\s._\-*·]+){2,}\w(?!\w)")
_SEPARATORS = re.compile(r"[\s._\-*·]+")


def skeleton(text: str) -> str:
    """``text`` as the filter compares it (see the module's docstring)."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    plain = unicodedata.normalize("NFC", plain).translate(_INVISIBLE).translate(_LOOK_ALIKE)
    return _SPELLED.sub(lambda m: _SEPARATORS.sub("", m.group(0)), plain)


def compile_words(words: Iterable[str]) -> tuple[str, ...]:
    """The skeletons of a stream's blocked words, made once per change of the list."""
    return tuple(sorted({s for s in (skeleton(w).strip() for w in words) if s}))


def chat_rules(words: Iterable[str]) -> dict[str, Any]:
    """A room's blocked words as its hub keeps them, with their skeletons made once."""
    listed = list(words)
    return {"blocked_words": listed, "blocked_skeletons": compile_words(listed)}


def blocked(text: str, skeletons: Iterable[str]) -> bool:
    """Whether ``text`` contains any of the blocked words (given as ``compile_words``)."""
    words = tuple(skeletons)
    if not words:
        return False
    shown = skeleton(text)
    return any(word in shown for word in words)
