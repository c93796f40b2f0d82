"""Any value of any ADCLICK_* variable is a usable setting or a ConfigurationError.

Settings are input too (issue 13, item 7: P999999999D made every later `adclick maintain`
fail): a value is refused at start with a message naming the variable, never accepted to
break something later, and never answered with a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adclick.db.rollups import filtered_rollups
from adclick.errors import ConfigurationError
from adclick.settings import MAX_DURATION, ROLLUP_BRIN_SUFFIX, Settings, load_settings

NAMES = sorted(f"ADCLICK_{name.upper()}" for name in Settings.model_fields)
# Values as an operator may mistype them: numbers of any size, durations, JSON, any text.
values = st.one_of(
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=40),
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["P999999999D", "-PT1M", "PT0S", "P36500D", "P36501D", "inf", "nan", "[0]"]),
    st.sampled_from(['{"a":', "[[]]", '[["minute"]]', "[1e309]", '[{"x": ["US"]}]', "null"]),
)


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


@settings(max_examples=600)
@given(st.sampled_from(NAMES), values)
def test_any_value_of_any_setting_is_usable_or_refused_by_name(name: str, value: str) -> None:
    with environment(name, value):
        try:
            loaded = load_settings()
        except ConfigurationError as exc:
            assert name in str(exc) or "invalid configuration" in str(exc)
            return
    # Accepted: every duration works in the date arithmetic retention and lateness do.
    for field in Settings.model_fields:
        duration = getattr(loaded, field)
        if isinstance(duration, timedelta):
            assert timedelta(0) <= duration <= MAX_DURATION
            assert datetime(2100, 1, 1, tzinfo=UTC) - duration > datetime.min.replace(tzinfo=UTC)
    assert loaded.allowed_lateness <= loaded.dedup_horizon


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADCLICK_DEDUP_HORIZON", "P999999999D"),
        ("ADCLICK_ALLOWED_LATENESS", "-PT1M"),
        ("ADCLICK_KAFKA_CONFIG", '{"a":'),
        ("ADCLICK_DIMENSION_SETS", "garbage"),
        ("ADCLICK_API_CACHE_MINUTES", "100000000"),
        ("ADCLICK_CLICKS_TOPIC", "clicks with spaces"),
        ("ADCLICK_INGEST_BATCH_TIMEOUT_S", "inf"),
    ],
)
def test_values_once_accepted_to_break_later_are_refused_at_start(name: str, value: str) -> None:
    with environment(name, value), pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert name.removeprefix("ADCLICK_").lower() in str(refused.value).lower()
    assert value not in str(refused.value) or len(value) < 4  # the value may be a secret


def test_a_configuration_file_that_is_not_toml_is_refused(tmp_path: object) -> None:
    path = f"{tmp_path}/adclick.toml"
    with open(path, "wb") as out:
        out.write(b"ingest_batch_size = = 3\n\xff")
    with environment("ADCLICK_CONFIG_FILE", path), pytest.raises(ConfigurationError):
        load_settings()


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ('["https://ads.example.com"]', True),
        ('["http://127.0.0.1:5173", "*"]', True),
        ('["http://[::1]:8080"]', True),
        ('["https://ads.example.com/"]', False),  # a path: browsers never send one
        ('["ads.example.com"]', False),
        ('["javascript:alert(1)"]', False),
        ('["https://ads.example.com\\r\\nX: y"]', False),
    ],
)
def test_cors_origins_are_origins(value: str, accepted: bool) -> None:
    with environment("ADCLICK_API_CORS_ORIGINS", value):
        if accepted:
            assert load_settings().api_cors_origins
        else:
            with pytest.raises(ConfigurationError, match="ADCLICK_API_CORS_ORIGINS"):
                load_settings()


identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True)


@settings(max_examples=300)
@given(st.lists(st.lists(identifiers, min_size=1, max_size=4), min_size=1, max_size=4))
def test_accepted_dimension_sets_are_tables_of_their_own(sets: list[list[str]]) -> None:
    """Every accepted set is a table no other set shares, whose names PostgreSQL keeps
    whole (it cuts identifiers at 63 bytes: two long names would become one table)."""
    with environment("ADCLICK_DIMENSION_SETS", json.dumps(sets)):
        try:
            loaded = load_settings()
        except ConfigurationError as exc:
            assert "ADCLICK_DIMENSION_SETS" in str(exc) or "dimension_sets" in str(exc)
            return
    tables = [rollup.table for rollup in filtered_rollups(loaded)]
    assert len(set(tables)) == len(tables)
    assert all(len(f"{table}{ROLLUP_BRIN_SUFFIX}".encode()) <= 63 for table in tables)


def test_sets_that_would_share_a_table_are_refused() -> None:
    with (
        environment("ADCLICK_DIMENSION_SETS", '[["a_b"], ["a", "b"]]'),
        pytest.raises(ConfigurationError, match="both be the table 'clicks_1m_by_a_b'"),
    ):
        load_settings()
