"""The OpenAPI documents the error answers the handlers really give."""

from __future__ import annotations

from pathlib import Path

from livecommerce.app import create_app
from tests.conftest import make_settings


def test_error_answers_are_documented_as_the_error_envelope(tmp_path: Path) -> None:
    """Every API operation documents its error statuses with the body the handlers send
    (``{"error": {...}}``), not FastAPI's default validation body."""
    app = create_app(make_settings("sqlite+aiosqlite://", tmp_path), check_migrations=False)
    spec = app.openapi()
    envelope = "#/components/schemas/ErrorOut"
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            statuses = {"422", "503"} if path.startswith(("/api/", "/sandbox/")) else set()
            if path == "/readyz":
                statuses = {"503"}
            for status in statuses:
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": envelope}, (method, path, status)
            if path.startswith("/api/"):
                assert {"401", "403", "404", "409", "429"} <= responses.keys(), (method, path)
