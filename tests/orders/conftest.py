"""Fixtures of the order tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI


@pytest.fixture
async def lenient(app: FastAPI) -> Any:
    """A client that receives the app's 500 instead of the exception behind it."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
