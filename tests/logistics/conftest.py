"""Fixtures of the logistics tests."""

from __future__ import annotations

import pytest

from livecommerce.logistics.network import Network, load_network


@pytest.fixture(scope="module")
def network() -> Network:
    """The corridor data as shipped, read once per module."""
    return load_network()
