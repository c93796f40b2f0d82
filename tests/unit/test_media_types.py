"""Which media type a client gets (api/media_types.py): whatever its Accept header says,
an answer, never a failure; application/graphql-response+json only when it prefers it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adclick.api.media_types import is_request_error, prefers_graphql_response


@pytest.mark.parametrize(
    ("accept", "prefers"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/graphql-response+json", True),
        ("application/graphql-response+json, application/json;q=0.9", True),
        ("application/json, application/graphql-response+json;q=0.5", False),
        ("application/json;q=0.5, Application/GraphQL-Response+JSON", True),
        ("application/graphql-response+json;q=0", False),
        ("application/graphql-response+json;q=nonsense", False),
    ],
)
def test_the_preferred_media_type(accept: str | None, prefers: bool) -> None:
    assert prefers_graphql_response(accept) is prefers


@given(st.text())
def test_any_accept_header_gets_an_answer(accept: str) -> None:
    assert isinstance(prefers_graphql_response(accept), bool)


def test_a_request_error_has_no_data_and_no_error_at_a_path() -> None:
    assert is_request_error({"data": None, "errors": [{"message": "Syntax Error"}]})
    assert not is_request_error({"data": None, "errors": [{"message": "x", "path": ["topAds"]}]})
    assert not is_request_error({"data": {"topAds": None}, "errors": [{"message": "x"}]})
    assert not is_request_error({"data": {"topAds": {}}})
