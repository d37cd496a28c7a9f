"""Blocked words match what reads the same, and nothing across two ordinary words."""

from __future__ import annotations

import pytest

from livecommerce.streams.wordfilter import blocked, compile_words

WORDS = compile_words(["Дурак", "spam"])


@pytest.mark.parametrize(
    "text",
    [
        "ты дурак",
        "ДУРАК!",
        "д у р а к",  # letters spelled out one at a time
        "д.у.р.а.к",
        "д-у-р-а-к",
        "ты дурaк",  # a Latin "a" in a Cyrillic word
        "дур\u200bак",  # a zero-width space inside
        "buy SPAM now",
        "s p a m",
        "ｓｐａｍ",  # full-width letters
        "sраm",  # Cyrillic "р" and "а" in a Latin word
        "spammer",  # a substring, as before
    ],
)
def test_spellings_that_read_as_a_blocked_word_are_blocked(text: str) -> None:
    assert blocked(text, WORDS)


@pytest.mark.parametrize(
    "text",
    ["вы дура к сожалению", "в еду раз", "hello, when is the sale?", "Сәлем! Қашан?", ""],
)
def test_ordinary_chat_is_not_blocked(text: str) -> None:
    assert not blocked(text, WORDS)


def test_no_words_blocks_nothing() -> None:
    assert not blocked("дурак", compile_words([])) and compile_words(["", "  "]) == ()
