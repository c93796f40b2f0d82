"""Each process imports what it uses: a module loaded for nothing costs start-up time and
memory, and DuckDB in the API printed leak warnings at every exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["duckdb", "pyarrow.parquet", "matplotlib", "strawberry", "uvicorn", "alembic"]


def _loaded_after(module: str) -> set[str]:
    """The HEAVY modules a fresh interpreter holds after importing ``module``."""
    code = (
        f"import sys, json, {module}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("module", "needs"),
    [
        # What every adclick process loads before its command runs, `adclick api` included:
        # the commands import their heavy modules themselves.
        ("adclick.cli", set()),
        ("adclick.api.app", {"strawberry", "uvicorn"}),
        ("adclick.ingest.worker", set()),
        ("adclick.close.closer", set()),
    ],
)
def test_a_process_loads_no_heavy_module_it_does_not_use(module: str, needs: set[str]) -> None:
    assert _loaded_after(module) <= needs
