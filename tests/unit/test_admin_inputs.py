"""Files and values operators hand to commands: any of them is used or refused clearly."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adclick.api.auth import new_token
from adclick.collect.checkpoints import (
    FINGERPRINT_SIZE,
    STATE_VERSION,
    StateFileError,
    StateStore,
)
from adclick.errors import InvalidInputError
from adclick.lifecycle.recompute import RangeError, utc_range
from adclick.loadgen.truth import HEADER, read_truth
from adclick.settings import Role

header = ",".join(HEADER).encode() + b"\n"
rows = st.lists(
    st.tuples(
        st.sampled_from(["2024-07-09T00:00:00+00:00", "2024-13-01", "x", ""]),
        st.text(max_size=5),
        st.sampled_from(["", "US", "a,b"]),
        st.one_of(st.integers().map(str), st.text(max_size=3)),
    ),
    max_size=5,
).map(lambda rs: b"".join(",".join(r).encode() + b"\n" for r in rs))


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=200), rows.map(lambda body: header + body)))
def test_any_truth_file_is_read_or_refused_with_its_name(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "truth.csv"
        path.write_bytes(content)
        try:
            read_truth(path)
        except InvalidInputError as exc:
            assert str(path) in str(exc)


@pytest.mark.parametrize("name", ["", "a\x1b[2J", "x\n", "y" * 129])
def test_a_token_name_that_would_garble_logs_is_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        new_token(name, Role.READER)
    assert new_token("frontend \u00e9", Role.READER)[1].name == "frontend \u00e9"


def _checkpoint(offset: int, size: int) -> dict[str, object]:
    return {"name": "app.log", "device": 1, "inode": 2, "offset": offset,
            "fingerprint": "f", "fingerprint_size": size}  # fmt: skip


@settings(max_examples=200)
@given(st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70))
def test_any_tail_state_file_is_used_or_refused_with_its_name(offset: int, size: int) -> None:
    """A hand-edited checkpoint (a negative offset made the first read fail with EINVAL)
    or a state path that is a directory: refused as the state file, never a traceback."""
    state = {"version": STATE_VERSION, "files": {"app.log": {"current": _checkpoint(offset, size)}}}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "tail.json"
        path.write_text(json.dumps(state))
        store = StateStore(path)
        try:
            loaded = store.load()
        except StateFileError as exc:
            assert str(path) in str(exc)
            assert offset < 0 or offset >= 2**63 or not 0 <= size <= FINGERPRINT_SIZE
            return
        finally:
            store.close()
        current = loaded["app.log"].current
        assert current is not None and current.offset == offset >= 0


def test_a_directory_as_the_tail_state_file_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    store = StateStore(tmp_path / "state")
    with pytest.raises(StateFileError, match=r"state file .*state cannot be read"):
        store.load()
    store.close()


offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)
moments = st.one_of(
    st.datetimes(),
    st.builds(
        lambda moment, offset: moment.replace(tzinfo=timezone(offset)), st.datetimes(), offsets
    ),
    st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 2)).map(
        lambda moment: moment.replace(second=0, microsecond=0)
    ),
)


@settings(max_examples=1000)
@given(moments, moments)
@example(
    datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=14))), datetime(2024, 1, 1)
)
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), datetime(2024, 1, 1))
@example(
    datetime(2024, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2024, 1, 2),
)
def test_any_recalculation_range_is_whole_utc_minutes_of_clicks_or_refused(
    start: datetime, end: datetime
) -> None:
    """recalculate and reconcile --from/--to: what they work on is a range of whole UTC
    minutes within the times a click may have, the same instants as given (no offset: UTC),
    or the range is refused with a RangeError the CLI prints; never anything else."""
    try:
        first, last = utc_range(start, end)
    except RangeError:
        return
    as_utc = [m.replace(tzinfo=UTC) if m.tzinfo is None else m for m in (start, end)]
    assert (first, last) == tuple(as_utc) and first.tzinfo is UTC and last.tzinfo is UTC
    assert first < last and first.second == first.microsecond == last.second == 0
    assert datetime(2000, 1, 1, tzinfo=UTC) <= first < last <= datetime(2100, 1, 1, tzinfo=UTC)
