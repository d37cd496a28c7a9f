"""Browser tests: a real server with the demo data, driven in headless Chromium.

Chromium comes from the system (Debian's ``chromium`` package); when it is missing and the
tests run as root with apt, the setup installs it (and an emoji font, so screenshots show
the reaction buttons). Playwright drives it through ``executable_path``: no browser download.
Where no browser can be had the tests skip with the reason, or fail under
``LIVECOMMERCE_REQUIRE_SERVICES=1``.

Screenshots of every page go to ``test-artifacts/screenshots`` (or the directory named by
``LIVECOMMERCE_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fixtures.database import services_required
from tests.fixtures.server import migrate, running_server, server_env

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Fonts so that screenshots show emoji (reactions) and Chinese text, not boxes.
DEBIAN_PACKAGES = ("chromium", "fonts-noto-color-emoji", "fonts-noto-cjk")


def _find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _install_chromium() -> str | None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *DEBIAN_PACKAGES]):
        done = subprocess.run(args, env=env, capture_output=True, timeout=900, check=False)
        if done.returncode != 0 and args[1] == "install":
            return None
    return _find_chromium()


def _unavailable(reason: str) -> None:
    if services_required():
        pytest.fail(f"LIVECOMMERCE_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _find_chromium() or _install_chromium()
    if path is None:
        _unavailable("no Chromium here and it cannot be installed (needs root and apt-get)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[object]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        await launched.close()


@pytest.fixture(scope="session")
def web_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server on SQLite with the demo catalog and accounts, its job worker running."""
    data = tmp_path_factory.mktemp("web-server")
    env = server_env(
        data,
        embedded_worker="true",
        carrier_sandbox_day_seconds="1",
        tracking_poll_seconds="1",
        notification_poll_seconds="0.3",
    )
    migrate(env)
    seeded = subprocess.run(
        [sys.executable, "-m", "livecommerce.cli", "seed", "--demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    with running_server(env, data / "server.log") as base:
        yield base


@pytest.fixture(scope="session")
def screenshots() -> Path:
    root = Path(os.environ.get("LIVECOMMERCE_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder = root / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
