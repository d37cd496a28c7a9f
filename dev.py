#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+ and pip.

python3 dev.py start   set up .venv, migrate, load demo data, serve on the embedded default
python3 dev.py test    set up .venv and run the whole test suite (extra args go to pytest)
python3 dev.py lint    ruff, mypy and the import layers
python3 dev.py audit   known vulnerabilities of every package installed in .venv
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
import venv
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"
AUDIT_IGNORES = ROOT / ".ci" / "audit-ignore.toml"
# PyPI's JSON API: the advisories it lists are the Python advisory database's (via OSV),
# the same feed as pip-audit's default service.
PYPI_JSON = "https://pypi.org/pypi"


def run(*args: str | Path) -> None:
    result = subprocess.run([str(a) for a in args], cwd=ROOT, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py may be started by an older python3)
        sys.exit(f"livecommerce needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        print("Creating the virtual environment in .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != wanted:
        print("Installing livecommerce and its dependencies into .venv ...", flush=True)
        # setuptools too: Python 3.11's venv comes with a release that has known advisories.
        run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip", "setuptools")
        run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
        STAMP.write_text(wanted)


def _pypi(path: str) -> dict[str, Any] | None:
    """PyPI's JSON for ``path`` (None when PyPI answers that it has none)."""
    request = urllib.request.Request(
        f"{PYPI_JSON}/{path}/json", headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data: dict[str, Any] = json.load(response)
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def advisories(name: str, version: str) -> tuple[list[dict[str, Any]] | None, str]:
    """The advisories that PyPI lists for release ``version`` of ``name``, or None and why
    they cannot be known.

    A release's own page lists them. Where only a project's page is served (as on networks
    that mirror PyPI partly), that page lists the advisories of the newest release, which
    are this release's only when it is the newest.
    """
    release = _pypi(f"{name}/{version}")
    if release is not None:
        return list(release.get("vulnerabilities") or []), "release"
    project = _pypi(name)
    if project is None:
        return None, "not on PyPI"
    newest = str(project["info"]["version"])
    if newest != version:
        return None, f"only the advisories of the newest release ({newest}) can be read here"
    return list(project.get("vulnerabilities") or []), "newest release"


def load_ignores() -> dict[str, dict[str, Any]]:
    if not AUDIT_IGNORES.exists():
        return {}
    entries = tomllib.loads(AUDIT_IGNORES.read_text(encoding="utf-8")).get("ignore", [])
    ignores = {}
    for entry in entries:
        missing = {"id", "package", "reason", "until"} - entry.keys()
        if missing or not isinstance(entry["until"], date):
            sys.exit(f"{AUDIT_IGNORES.name}: {entry} needs id, package, reason and until = a date")
        ignores[str(entry["id"])] = entry
    return ignores


def audit(python: Path, *, strict: bool) -> int:
    """Known vulnerabilities of every distribution installed for ``python`` (the project
    itself, installed editable, is not on PyPI); 1 when one is found and not ignored."""
    listing = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    )
    packages = sorted((p["name"], p["version"]) for p in json.loads(listing.stdout))
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda p: advisories(*p), packages))
    except (urllib.error.URLError, TimeoutError) as exc:
        # Not audited is not audited clean.
        print(f"The audit could not read PyPI's advisories: {exc}", file=sys.stderr)
        return 2
    ignores, today, found, unknown = load_ignores(), date.today(), 0, []
    for (name, version), (vulns, source) in zip(packages, results, strict=True):
        if vulns is None:
            unknown.append(f"  {name} {version}: {source}")
            continue
        seen: set[str] = set()
        for vuln in vulns:
            ids = [vuln["id"], *vuln.get("aliases", [])]
            # One advisory comes once per database that has it (PYSEC, GHSA), as aliases.
            if vuln.get("withdrawn") or seen.intersection(ids):
                continue
            seen.update(ids)
            fixed = ", ".join(vuln.get("fixed_in") or []) or "no fixed release yet"
            summary = " ".join((vuln.get("summary") or vuln.get("details") or "").split())
            line = f"{name} {version}: {' / '.join(ids)} (fixed in {fixed}) {summary[:120]}"
            ignore = next(
                (ignores[i] for i in ids if ignores.get(i, {}).get("package") == name), None
            )
            if ignore is not None and ignore["until"] >= today:
                print(f"ignored until {ignore['until']}: {line}\n  because {ignore['reason']}")
                continue
            if ignore is not None:
                line += f"\n  (its ignore expired on {ignore['until']})"
            print(f"VULNERABLE {line}")
            found += 1
    audited = len(packages) - len(unknown)
    print(f"{audited} of {len(packages)} installed packages audited, {found} vulnerable.")
    if unknown:
        print(f"Not audited ({len(unknown)}):", *unknown, sep="\n")
    return 1 if found or (strict and unknown) else 0


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    extra = sys.argv[2:]
    if command == "start":
        setup()
        run(BIN / "livecommerce", "migrate")
        run(BIN / "livecommerce", "seed", "--demo")
        os.chdir(ROOT)
        os.execv(str(BIN / "livecommerce"), [str(BIN / "livecommerce"), "serve", *extra])
    elif command == "test":
        setup()
        run(PYTHON, "-m", "pytest", *extra)
    elif command == "lint":
        setup()
        run(BIN / "ruff", "check", ".")
        run(BIN / "ruff", "format", "--check", ".")
        run(BIN / "mypy", "livecommerce", "workers", "bench")
        # The layering of docs/architecture.md ([tool.importlinter] in pyproject.toml).
        run(BIN / "lint-imports")
    elif command == "audit":
        setup()
        sys.exit(audit(PYTHON, strict="--strict" in extra))
    else:
        print(__doc__)
        sys.exit(0 if command in ("help", "-h", "--help") else 2)


if __name__ == "__main__":
    main()
