"""`adclick cold query` against a real catalog: operators only, one SELECT, no other file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import adclick.cli.lifecycle as lifecycle_cli
from adclick.cli.app import app
from adclick.db.connect import connect
from adclick.settings import Settings


@pytest.fixture
def cold_settings(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose catalog has one cold file of raw clicks (two clicks of ad001)."""
    cold = tmp_path / "cold"
    (cold / "raw_clicks").mkdir(parents=True)
    url = cold / "raw_clicks" / "2024-07-09.parquet"
    # A timestamp as tiering writes it (lifecycle/parquet.py): DuckDB needs pytz to hand
    # one to Python, and a missing pytz failed every query that selected it.
    times = pa.array([1_720_483_201_000_000, 1_720_483_262_000_000], pa.timestamp("us", tz="UTC"))
    table = pa.table({"ts": times, "ad_id": ["ad001"] * 2, "user_id": ["user-1"] * 2})
    pq.write_table(table, url)
    with connect(settings) as conn:
        conn.execute(
            "INSERT INTO cold_files (relation, range_start, range_end, url, rows, checksum,"
            " bytes, hot_bytes) VALUES ('raw_clicks', '2024-07-09', '2024-07-10', %s, 2, 0,"
            " 1, 1)",
            (str(url),),
        )
        conn.commit()
    cold_settings = settings.model_copy(update={"cold_storage_url": str(cold)})
    monkeypatch.setattr(lifecycle_cli, "get_settings", lambda: cold_settings)
    return cold_settings


def cold_query(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["cold", "query", *args])
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


def test_cold_query_answers_a_select_over_the_catalogued_files(cold_settings: Settings) -> None:
    code, output = cold_query(
        "--operator", "--output", "csv", "SELECT ad_id, count(*) AS n FROM raw_clicks GROUP BY 1"
    )
    assert (code, output) == (0, "ad_id,n ad001,2")


def test_cold_query_returns_timestamps(cold_settings: Settings) -> None:
    code, output = cold_query(
        "--operator", "--output", "csv", "SELECT ts, ad_id FROM raw_clicks ORDER BY ts"
    )
    assert (code, output) == (
        0,
        "ts,ad_id 2024-07-09 00:00:01+00:00,ad001 2024-07-09 00:01:02+00:00,ad001",
    )


def test_cold_query_is_for_operators_only(cold_settings: Settings) -> None:
    code, output = cold_query("SELECT count(*) FROM raw_clicks")
    assert code == 2
    assert "personal data" in output and "--operator" in output
    assert "operators only" in CliRunner().invoke(app, ["cold", "query", "--help"]).output


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("COPY (SELECT 1) TO '{tmp}/x.csv'", "NOT_A_SELECT"),
        ("COPY raw_clicks TO '{tmp}/clicks.parquet' (FORMAT parquet)", "NOT_A_SELECT"),
        ("ATTACH '{tmp}/other.duckdb'", "NOT_A_SELECT"),
        ("INSTALL httpfs", "NOT_A_SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "FILE_ACCESS_REFUSED"),
    ],
)
def test_cold_query_refuses_what_reads_or_writes_other_files(
    cold_settings: Settings, tmp_path: Path, statement: str, expected: str
) -> None:
    before = sorted(tmp_path.rglob("*"))
    code, output = cold_query("--operator", statement.format(tmp=tmp_path))
    assert code == 2, output
    assert f"cold query refused: {expected}" in output
    assert "root:" not in output
    assert sorted(tmp_path.rglob("*")) == before
