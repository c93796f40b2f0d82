"""The npm packages of web/ (the ad manager and the GraphQL-over-HTTP audit), installed
once from the lock file for the tests that use them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "web"


def npm_packages() -> Path:
    """web/node_modules as web/package-lock.json pins it (npm ci when out of date)."""
    installed = WEB / "node_modules" / ".package-lock.json"
    lock = WEB / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        npm = shutil.which("npm")
        assert npm, "npm is missing: scripts/bootstrap.sh installs Node.js"
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, capture_output=True,
            timeout=600,
        )  # fmt: skip
    return WEB / "node_modules"
