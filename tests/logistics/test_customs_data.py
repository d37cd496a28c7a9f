"""A corridor file whose dated rules overlap or leave gaps is refused when it is loaded."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from livecommerce.app import create_app
from livecommerce.logistics.customs import CorridorDataError
from livecommerce.logistics.network import DEFAULT_FILE, load_network
from tests.conftest import make_settings

PACKAGED: dict[str, Any] = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))


def rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in data["customs"]["rules"] if r["id"] == rule_id)


def vat(data: dict[str, Any], vat_id: str) -> dict[str, Any]:
    return next(v for rates in data["customs"]["vat"].values() for v in rates if v["id"] == vat_id)


def written(tmp_path: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    data = copy.deepcopy(PACKAGED)
    change(data)
    path = tmp_path / "corridor-bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_packaged_file_is_valid() -> None:
    """The corridor file shipped with the code loads."""
    assert load_network(DEFAULT_FILE).customs.unions() == {"EAEU", "UZ"}


def _gap(data: dict[str, Any]) -> None:
    rule(data, "EAEU-2026-ECOM")["effective_from"] = "2026-07-02"


def _open_ended(data: dict[str, Any]) -> None:
    rule(data, "EAEU-2020-PERSONAL")["effective_to"] = None


def _no_uz_rule(data: dict[str, Any]) -> None:
    data["customs"]["rules"] = [r for r in data["customs"]["rules"] if r["union"] != "UZ"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda d: rule(d, "EAEU-2026-ECOM").update(effective_from="2026-06-15"),
            "customs rule 'EAEU-2026-ECOM' for EAEU overlaps 'EAEU-2020-PERSONAL' "
            "(2026-06-15 <= 2026-06-30)",
            id="overlap",
        ),
        pytest.param(
            _gap,
            "gap for EAEU between customs rule 'EAEU-2020-PERSONAL' (ends 2026-06-30) and "
            "'EAEU-2026-ECOM' (starts 2026-07-02)",
            id="gap",
        ),
        pytest.param(
            _open_ended,
            "customs rule 'EAEU-2020-PERSONAL' for EAEU is open-ended but 'EAEU-2026-ECOM' "
            "starts 2026-07-01 (overlap)",
            id="open-ended-not-last",
        ),
        pytest.param(
            lambda d: rule(d, "EAEU-2026-ECOM").update(effective_to="2026-01-01"),
            "customs rule 'EAEU-2026-ECOM': ends 2026-01-01 before it starts 2026-07-01",
            id="end-before-start",
        ),
        pytest.param(
            lambda d: rule(d, "EAEU-2026-ECOM").update(effective_from="2026-13-01"),
            "customs rule 'EAEU-2026-ECOM': effective_from '2026-13-01' is not a date",
            id="bad-date",
        ),
        pytest.param(
            lambda d: vat(d, "VAT-RU-2026").update(effective_from="2026-02-01"),
            "gap for RU between VAT rate 'VAT-RU-2019' (ends 2025-12-31) and 'VAT-RU-2026' "
            "(starts 2026-02-01)",
            id="vat-gap",
        ),
        pytest.param(
            lambda d: vat(d, "VAT-KZ-2026").update(effective_from="2025-12-01"),
            "VAT rate 'VAT-KZ-2026' for KZ overlaps 'VAT-KZ-2009' (2025-12-01 <= 2025-12-31)",
            id="vat-overlap",
        ),
        pytest.param(
            lambda d: d["customs"]["vat"].pop("KG"),
            "customs rule 'EAEU-2026-ECOM' needs a VAT rate for KG from 2026-07-01",
            id="missing-vat",
        ),
        pytest.param(
            lambda d: rule(d, "EAEU-2026-ECOM").update(excluded=["spaceships"]),
            "customs rule 'EAEU-2026-ECOM': unknown excluded category 'spaceships'",
            id="unknown-category",
        ),
        pytest.param(
            lambda d: d["customs"]["rules"].append(dict(rule(d, "UZ-2025-COURIER"))),
            "customs rule 'UZ-2025-COURIER' is defined twice",
            id="duplicate-id",
        ),
        pytest.param(_no_uz_rule, "no customs rule for UZ (union UZ)", id="no-rule"),
        pytest.param(
            lambda d: rule(d, "UZ-2025-POSTAL").update(carrier_kind=None),
            "customs rule 'UZ-2025-COURIER' for UZ (courier) is open-ended but "
            "'UZ-2025-POSTAL' starts 2025-05-01 (overlap)",
            id="any-carrier-overlaps-courier",
        ),
        pytest.param(
            lambda d: rule(d, "UZ-2025-POSTAL").update(carrier_kind="pigeon"),
            "customs rule 'UZ-2025-POSTAL': unknown carrier_kind 'pigeon'",
            id="unknown-carrier-kind",
        ),
        pytest.param(
            lambda d: d["customs"]["rules"].remove(rule(d, "UZ-2025-POSTAL")),
            "no customs rule for postal delivery to UZ (union UZ)",
            id="postal-offered-without-rule",
        ),
        pytest.param(
            lambda d: d["warehouses"]["KZALA"].update(export_mode="9999"),
            "warehouse KZALA: unknown export mode '9999' (known: 9610, 9710, 9810, 1210)",
            id="unknown-export-mode",
        ),
        pytest.param(
            lambda d: rule(d, "EAEU-2026-ECOM")["consignee"].update(tax_id="sometimes"),
            "customs rule 'EAEU-2026-ECOM': consignee tax_id 'sometimes' is not one of "
            "always, when_due, never",
            id="unknown-tax-id-mode",
        ),
        pytest.param(
            lambda d: rule(d, "UZ-2025-COURIER")["consignee"].update(required=["passport"]),
            "customs rule 'UZ-2025-COURIER': unknown consignee field 'passport'",
            id="unknown-consignee-field",
        ),
        pytest.param(
            lambda d: d["countries"]["KG"].pop("tax_id"),
            "customs rule 'EAEU-2026-ECOM' asks for a tax id but country KG has no tax_id format",
            id="tax-id-without-format",
        ),
        pytest.param(
            lambda d: d["countries"]["KZ"]["tax_id"].update(pattern="^[0-9{12}$"),
            "country KZ: tax_id pattern: unterminated character set at position 1",
            id="bad-tax-id-pattern",
        ),
    ],
)
def test_inconsistent_data_names_file_and_rule(
    tmp_path: Path, change: Callable[[dict[str, Any]], object], expected: str
) -> None:
    """Each inconsistency is refused with the file's name and the rule or VAT ids."""
    path = written(tmp_path, change)
    with pytest.raises(CorridorDataError) as caught:
        load_network(path)
    assert str(caught.value) == f"{path}: {expected}"


def test_packaged_file_states_export_modes_and_consignee_data() -> None:
    """Both warehouses' stock left China under 9810; the e-commerce rule asks a tax id only
    when duty is due, the other rules never; each country knows its number's shape."""
    network = load_network(DEFAULT_FILE)
    assert {code: network.export_mode(code) for code in network.warehouses} == {
        "DEDUI": "9810",
        "KZALA": "9810",
    }
    assert set(network.export_modes) == {"9610", "9710", "9810", "1210"}
    assert network.export_mode_name("9810", "en") == (
        "Cross-border e-commerce, export to an overseas warehouse"
    )
    modes = {r.id: r.consignee.tax_id for r in network.customs.rules}
    assert modes == {
        "EAEU-2020-PERSONAL": "never",
        "EAEU-2026-ECOM": "when_due",
        "UZ-2025-COURIER": "never",
        "UZ-2025-POSTAL": "never",
    }
    kz = network.tax_id_format("KZ")
    assert kz is not None and kz.name("kk") == "ЖСН" and kz.matches("900101300123")
    assert not kz.matches("90010130012")
    pinfl = network.tax_id_format("UZ")
    assert pinfl is not None and pinfl.name("uz") == "JSHSHIR" and pinfl.matches("3" * 14)


def test_start_up_stops_on_a_bad_file(tmp_path: Path) -> None:
    """create_app loads the corridor file at start-up: a gap stops it there, not at a quote."""
    path = written(tmp_path, _gap)
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path)
    settings = settings.model_copy(update={"logistics_file": path})
    with pytest.raises(CorridorDataError, match=r"corridor-bad\.json: gap for EAEU"):
        create_app(settings)
