"""Files and values operators hand to commands: any of them is used or refused clearly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adclick.api.auth import new_token
from adclick.errors import InvalidInputError
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
