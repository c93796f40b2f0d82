"""web/ for the tests: its npm packages installed from the lock file and the ad manager
built, once, whichever test (or pytest-xdist worker) asks first."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "web"


@contextmanager
def _locked() -> Iterator[None]:
    """One process at a time in web/ (pytest-xdist runs tests in several)."""
    with (WEB / ".tests.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _npm(*args: str) -> None:
    npm = shutil.which("npm")
    assert npm, "npm is missing: scripts/bootstrap.sh installs Node.js"
    subprocess.run([npm, *args], cwd=WEB, check=True, capture_output=True, timeout=600)


def npm_packages() -> Path:
    """web/node_modules as web/package-lock.json pins it (npm ci when out of date)."""
    with _locked():
        installed = WEB / "node_modules" / ".package-lock.json"
        lock = WEB / "package-lock.json"
        if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
            _npm("ci", "--no-audit", "--no-fund")
    return WEB / "node_modules"


def built_ad_manager() -> Path:
    """web/dist, built from the sources as they are now."""
    npm_packages()
    with _locked():
        _npm("run", "build")
    return WEB / "dist"


def chromium_path() -> str:
    """Debian's Chromium (browsers cannot be downloaded here; Playwright drives this one),
    installed with apt-get where missing."""
    with _locked():
        found = shutil.which("chromium")
        if found is None:
            apt = ["apt-get", "install", "-y", "-qq", "chromium"]
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            subprocess.run(apt, check=True, capture_output=True, timeout=900)
            found = shutil.which("chromium")
    assert found, "chromium did not install"
    return found
