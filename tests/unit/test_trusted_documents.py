"""Trusted documents: the frontend's operations by id, and nothing else when required;
and the cache headers an answer gets. Any documentId is either a trusted document or a
clear refusal."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from graphql.utilities import build_schema
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.responses import Response

from adclick.api.http_cache import Cacheability, with_cache_headers
from adclick.api.trusted_documents import TrustedDocuments, UnknownDocument
from adclick.resources import OPERATIONS_DIR
from adclick.settings import Settings
from graphql import parse, print_ast, validate

DOCUMENTS = TrustedDocuments.load(OPERATIONS_DIR)
OPERATIONS = sorted(OPERATIONS_DIR.glob("*.graphql"))
SCHEMA = build_schema((OPERATIONS_DIR.parent / "schema.graphql").read_text())


@pytest.mark.parametrize("path", OPERATIONS, ids=lambda p: p.stem)
def test_each_operation_is_found_by_name_and_by_digest(path: Any) -> None:
    text = path.read_text()
    digest = f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"
    for document_id in (path.stem, digest):
        resolved = DOCUMENTS.resolve({"documentId": document_id, "variables": {"a": 1}})
        assert resolved == {"query": text, "variables": {"a": 1}}


@pytest.mark.parametrize("path", OPERATIONS, ids=lambda p: p.stem)
def test_an_operation_passes_the_rule_however_it_is_formatted(path: Any) -> None:
    reformatted = print_ast(parse(path.read_text()))  # no comments, other spacing
    assert validate(SCHEMA, parse(reformatted), [DOCUMENTS.rule()]) == []


def test_any_other_document_is_refused_with_its_code() -> None:
    text = OPERATIONS[0].read_text().replace("{", "{ __typename ", 1)
    errors = validate(SCHEMA, parse("{ __typename }"), [DOCUMENTS.rule()])
    errors += validate(SCHEMA, parse(text), [DOCUMENTS.rule()])
    assert [e.extensions and e.extensions["code"] for e in errors] == ["DOCUMENT_NOT_TRUSTED"] * 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(
    st.one_of(
        json_values,
        st.dictionaries(st.text(), json_values).map(lambda d: {**d, "documentId": d.get("x")}),
        st.builds(lambda i, v: {"documentId": i, "variables": v}, json_values, json_values),
    )
)
def test_any_request_data_resolves_or_is_refused_clearly(data: Any) -> None:
    try:
        resolved = DOCUMENTS.resolve(data)
    except UnknownDocument as refused:
        assert refused.status_code == 400
        return
    if isinstance(data, dict) and "documentId" in data:
        assert resolved["query"] in DOCUMENTS.by_id.values()
        assert "documentId" not in resolved
    else:
        assert resolved is data


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status)


@pytest.mark.parametrize("anonymous", [False, True])
def test_answers_over_complete_windows_may_be_reused_for_the_max_age(anonymous: bool) -> None:
    settings = Settings(api_allow_anonymous=anonymous, api_cache_max_age_s=45)
    complete = Cacheability()
    complete.note(True)
    complete.note(True)
    response = with_cache_headers(_answer({"data": {"x": 1}}), Headers(), complete, settings)
    scope = "public" if anonymous else "private"
    assert response.headers["Cache-Control"] == f"{scope}, max-age=45"
    etag = response.headers["ETag"]
    again = with_cache_headers(
        _answer({"data": {"x": 1}}), Headers({"if-none-match": f'W/"x", {etag}'}), complete,
        settings,
    )  # fmt: skip
    assert again.status_code == 304 and again.body == b""
    changed = with_cache_headers(
        _answer({"data": {"x": 2}}), Headers({"if-none-match": etag}), complete, settings
    )
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_other_answers_are_revalidated_and_errors_never_stored() -> None:
    settings = Settings()
    mixed = Cacheability()
    mixed.note(True)
    mixed.note(False)
    for cacheability in (mixed, Cacheability()):
        response = with_cache_headers(_answer({"data": {}}), Headers(), cacheability, settings)
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["ETag"]
    refused = _answer({"data": None, "errors": [{"message": "x"}]})
    complete = Cacheability()
    complete.note(True)
    for response in (refused, _answer({"data": {}}, status=400)):
        done = with_cache_headers(response, Headers(), complete, settings)
        assert done.headers["Cache-Control"] == "no-store" and "ETag" not in done.headers
