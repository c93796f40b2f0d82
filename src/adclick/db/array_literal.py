"""PostgreSQL array literals for bulk parameters, built with whole-string operations.

The ingest worker sends a batch's rollup deltas as arrays of tens of thousands of
elements. psycopg's list dumper visits every element in Python, which cost the worker
more than the rest of its rollup work; these literals are an order of magnitude cheaper
(``python -m bench.array_params``; figures in docs/benchmarks.md). A literal is one
text parameter that the statement casts with ``%s::text[]`` or ``%s::bigint[]``.
"""

from __future__ import annotations

from collections.abc import Sequence

# PostgreSQL text cannot hold NUL, so no stored value contains it: it marks the element
# boundaries while quotes and backslashes are escaped across the whole string at once.
_BOUNDARY = "\x00"


def text_array_literal(values: Sequence[str]) -> str:
    """``{"a","b\\"c"}``: every element quoted, so 'NULL', blanks and commas stay text."""
    if not values:
        return "{}"
    joined = _BOUNDARY.join(values)
    if joined.count(_BOUNDARY) != len(values) - 1:
        raise ValueError("a PostgreSQL text value cannot contain NUL")
    escaped = joined.replace("\\", "\\\\").replace('"', '\\"')
    return '{"' + escaped.replace(_BOUNDARY, '","') + '"}'


def int_array_literal(values: Sequence[int]) -> str:
    """``{1,2,3}``."""
    return "{" + ",".join(map(str, values)) + "}"


def bool_array_literal(values: Sequence[bool]) -> str:
    """``{t,f}``."""
    return "{" + ",".join("t" if value else "f" for value in values) + "}"
