"""Password policy: long enough, and not one of the passwords guessed first.

``common-passwords.txt`` is the list Django ships (django/contrib/auth/common-passwords.txt.gz,
BSD licence): 19,640 common passwords, lower-cased and deduplicated, from Royce Williams'
compilation of leaked-password frequency lists, most common first. Compared lower-cased, so
``PassWord123`` counts as ``password123``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from livecommerce.config import DEFAULT_MIN_PASSWORD_LENGTH
from livecommerce.errors import ValidationFailed
from livecommerce.i18n.messages import N_

DEFAULT_MIN_LENGTH = DEFAULT_MIN_PASSWORD_LENGTH  # LIVECOMMERCE_PASSWORD_MIN_LENGTH's default
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt")


class PasswordTooShort(ValidationFailed):
    code = "password_too_short"
    message = N_("The password must be at least %(min_length)s characters long.")


class PasswordTooCommon(ValidationFailed):
    code = "password_too_common"
    message = N_("This password is too common. Choose one that is harder to guess.")


@cache
def common_passwords() -> frozenset[str]:
    with COMMON_PASSWORDS_FILE.open(encoding="utf-8") as fh:
        return frozenset(line.strip() for line in fh if line.strip())


def check_password(password: str, *, min_length: int) -> None:
    """Raise the 422 a sign-up or a password change answers for a weak password."""
    if len(password) < min_length:
        raise PasswordTooShort(
            details={"field": "password", "min_length": min_length}, min_length=min_length
        )
    if password.lower() in common_passwords():
        raise PasswordTooCommon(details={"field": "password"})
