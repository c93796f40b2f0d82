"""`adclick cold query`'s DuckDB: one SELECT over the catalogued files, no other file."""

from __future__ import annotations

from pathlib import Path

import duckdb
import fsspec
import pytest

from adclick.lifecycle.cold import ColdQueryCode, ColdQueryError, query_files


@pytest.fixture
def cold(tmp_path: Path) -> tuple[str, dict[str, list[str]]]:
    """A cold directory with one catalogued file of raw clicks, and one file not catalogued."""
    directory = tmp_path / "cold"
    (directory / "raw_clicks").mkdir(parents=True)
    duck = duckdb.connect()
    for name, ad in (("2024-07-09.parquet", "ad001"), ("stray.parquet", "ad999")):
        target = directory / "raw_clicks" / name
        duck.execute(f"COPY (SELECT '{ad}' AS ad_id, 1 AS n) TO '{target}' (FORMAT parquet)")
    duck.close()
    return str(directory), {"raw_clicks": [str(directory / "raw_clicks" / "2024-07-09.parquet")]}


def test_a_select_over_the_catalogued_views_works(cold: tuple[str, dict[str, list[str]]]) -> None:
    url, files = cold
    assert query_files(url, files, "SELECT ad_id, sum(n) AS n FROM raw_clicks GROUP BY 1") == (
        ["ad_id", "n"],
        [("ad001", 1)],
    )
    assert query_files(url, files, f"FROM read_parquet('{files['raw_clicks'][0]}')") == (
        ["ad_id", "n"],
        [("ad001", 1)],
    )


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO '{tmp}/x.csv'",
        "COPY raw_clicks TO '{file}' (FORMAT parquet, USE_TMP_FILE false)",  # a cold file
        "EXPORT DATABASE '{tmp}/export'",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "PRAGMA enable_profiling",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; COPY (SELECT 1) TO '{tmp}/y.csv'",
        "",
    ],
)
def test_statements_that_are_not_one_select_are_refused(
    cold: tuple[str, dict[str, list[str]]], tmp_path: Path, statement: str
) -> None:
    url, files = cold
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ColdQueryError) as refused:
        query_files(url, files, statement.format(tmp=tmp_path, file=files["raw_clicks"][0]))
    assert refused.value.code == ColdQueryCode.NOT_A_SELECT
    assert "exactly one SELECT" in str(refused.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_parquet('{stray}')",  # under the cold directory, not catalogued
    ],
)
def test_files_other_than_the_catalogued_ones_cannot_be_read(
    cold: tuple[str, dict[str, list[str]]], statement: str
) -> None:
    url, files = cold
    stray = Path(files["raw_clicks"][0]).with_name("stray.parquet")
    with pytest.raises(ColdQueryError) as refused:
        query_files(url, files, statement.format(stray=stray))
    assert refused.value.code == ColdQueryCode.FILE_ACCESS_REFUSED
    assert "only the catalogued cold files" in str(refused.value)


def test_duckdb_errors_are_bad_query_without_a_traceback(
    cold: tuple[str, dict[str, list[str]]],
) -> None:
    url, files = cold
    for statement in ("SELEC 1", "SELECT nope FROM raw_clicks", "SELECT * FROM clicks_1m"):
        with pytest.raises(ColdQueryError) as failed:
            query_files(url, files, statement)
        assert failed.value.code == ColdQueryCode.BAD_QUERY


def test_an_empty_catalog_still_locks_duckdb(tmp_path: Path) -> None:
    with pytest.raises(ColdQueryError) as refused:
        query_files(str(tmp_path), {}, "SELECT * FROM read_csv('/etc/passwd')")
    assert refused.value.code == ColdQueryCode.FILE_ACCESS_REFUSED


def test_files_behind_an_fsspec_url_are_read(cold: tuple[str, dict[str, list[str]]]) -> None:
    memory = fsspec.filesystem("memory")
    local = cold[1]["raw_clicks"][0]
    with memory.open("memory://cold-test/raw_clicks/a.parquet", "wb") as out:
        out.write(Path(local).read_bytes())
    try:
        files = {"raw_clicks": ["memory://cold-test/raw_clicks/a.parquet"]}
        assert query_files("memory://cold-test", files, "SELECT ad_id FROM raw_clicks") == (
            ["ad_id"],
            [("ad001",)],
        )
        with pytest.raises(ColdQueryError):
            query_files("memory://cold-test", files, f"FROM read_parquet('{local}')")
    finally:
        memory.rm("memory://cold-test", recursive=True)
