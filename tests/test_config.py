"""Settings: what the configuration refuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from livecommerce.config import Settings


def test_short_configured_secret_keys_are_refused() -> None:
    """A configured signing key shorter than 32 characters is a configuration error."""
    with pytest.raises(ValidationError):
        Settings(secret_key="short")
