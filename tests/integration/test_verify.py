"""``adclick verify``: the check users run after a load finds every difference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from adclick.loadgen.generator import generate
from adclick.loadgen.truth import TruthAccumulator, read_truth
from adclick.loadgen.verify import compare
from adclick.settings import Settings
from tests.helpers import execute, ingest_until_idle, load, recent_spec


def verify_command(settings: Settings, truth_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adclick", "verify", "--truth", str(truth_file)],
        env={**os.environ, **settings.as_environment()},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_verify_passes_on_exact_counts_and_names_every_difference(
    settings: Settings, tmp_path: Path
) -> None:
    spec = recent_spec(5_000, seed=8, ads=300, duplicate_fraction=0.1)
    accumulator = TruthAccumulator.for_spec(spec)
    for block in generate(spec):
        accumulator.add(block)
    truth_file = tmp_path / "t.csv"
    accumulator.write_csv(truth_file)
    assert load(settings, spec).by_ad_minute == read_truth(truth_file).by_ad_minute
    ingest_until_idle(settings)

    assert compare(settings, read_truth(truth_file)) == []
    clean = verify_command(settings, truth_file)
    assert clean.returncode == 0, clean.stderr
    assert "match" in clean.stderr

    (ad, minute), clicks = next(iter(read_truth(truth_file).by_ad_minute.items()))
    execute(
        settings,
        "UPDATE clicks_1m SET clicks = clicks + 1 WHERE ad_id = %s AND minute = to_timestamp(%s)",
        ad,
        minute,
    )
    execute(settings, "DELETE FROM clicks_1h WHERE ad_id = %s", ad)
    differences = compare(settings, read_truth(truth_file))
    assert {(d.rollup, d.ad_id) for d in differences} == {("clicks_1m", ad), ("clicks_1h", ad)}
    changed = next(d for d in differences if d.rollup == "clicks_1m")
    assert (changed.expected, changed.stored) == (clicks, clicks + 1)
    dirty = verify_command(settings, truth_file)
    assert dirty.returncode == 1
    assert f"clicks_1m {ad}" in dirty.stdout
