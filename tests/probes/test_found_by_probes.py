"""Defects the outside probes found, each kept found."""

from __future__ import annotations

import httpx

from tests.fixtures.factories import account


async def test_a_warehouse_filter_with_a_nul_byte_is_a_validation_error(
    client: httpx.AsyncClient,
) -> None:
    """``?warehouse=`` holding a byte PostgreSQL's text refuses (NUL) is the usual 422 on the
    order, shipment and manifest lists, never a 500; a real code still filters."""
    _, headers = await account(client, role="merchant")
    for path in ("/api/v1/orders", "/api/v1/shipments", "/api/v1/shipments/manifest.csv"):
        query = "&date=2026-11-23" if path.endswith(".csv") else ""
        refused = await client.get(f"{path}?warehouse=%00%0E%60ox{query}", headers=headers)
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["error"]["code"] == "validation_error"
        fine = await client.get(f"{path}?warehouse=KZALA{query}", headers=headers)
        assert fine.status_code == 200, (path, fine.text)
