"""Array literals reach PostgreSQL as exactly the values they were built from."""

from __future__ import annotations

import pytest

from adclick.db.array_literal import bool_array_literal, int_array_literal, text_array_literal
from adclick.settings import Settings
from tests.helpers import query

AWKWARD_TEXT = [
    "ad-1",
    "",
    "NULL",
    "null",
    ' "quoted" ',
    "back\\slash\\",
    "comma,and{braces}",
    "tab\tnew\nline",
    "ünïcødé ✓",
    '\\"',
]


@pytest.mark.parametrize("values", [AWKWARD_TEXT, [], [""], ["only"]])
def test_text_literal_round_trips(settings: Settings, values: list[str]) -> None:
    [(stored,)] = query(settings, "SELECT %s::text[]", text_array_literal(values))
    assert stored == values


@pytest.mark.parametrize("values", [[0, -1, 1_720_483_200_000, 2**62], [], [7]])
def test_int_literal_round_trips(settings: Settings, values: list[int]) -> None:
    [(stored,)] = query(settings, "SELECT %s::bigint[]", int_array_literal(values))
    assert stored == values


@pytest.mark.parametrize("values", [[True, False, False, True], [], [False]])
def test_bool_literal_round_trips(settings: Settings, values: list[bool]) -> None:
    [(stored,)] = query(settings, "SELECT %s::boolean[]", bool_array_literal(values))
    assert stored == values


def test_nul_cannot_be_sent() -> None:
    with pytest.raises(ValueError, match="NUL"):
        text_array_literal(["a", "b\x00c"])
