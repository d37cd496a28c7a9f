#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+ and pip.

python3 dev.py start   set up .venv, migrate, load demo data, serve on the embedded default
python3 dev.py test    set up .venv and run the whole test suite (extra args go to pytest)
python3 dev.py lint    ruff and mypy
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"


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
        run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
        STAMP.write_text(wanted)


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
    else:
        print(__doc__)
        sys.exit(0 if command in ("help", "-h", "--help") else 2)


if __name__ == "__main__":
    main()
