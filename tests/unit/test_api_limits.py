"""The query limits (depth, aliases) and the validation cache that must not bypass them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from strawberry.extensions.validation_cache import _get_validate_cache

from adclick.api.schema import build_schema
from adclick.settings import Settings

# Deeper than api_max_depth: fragments nest the selection as deep as a client wants.
TOO_DEEP = (
    "query { topAds(window: {lastMinutes: 1}) { ...a } } "
    "fragment a on TopAds { window { ...b } } "
    "fragment b on Window { from }"
)


def codes(result: Any) -> list[str]:
    return [(e.extensions or {}).get("code", "") for e in result.errors or []]


def execute(settings: Settings, document: str) -> Any:
    return asyncio.run(build_schema(settings).execute(document))


@pytest.mark.parametrize("repeat", [1, 2])
def test_too_deep_and_too_many_aliases_are_refused_every_time(repeat: int) -> None:
    settings = Settings(api_max_depth=1, api_max_aliases=3)
    aliases = "{ " + " ".join(f"a{i}: topAds(window: {{lastMinutes: 1}}) {{ source }}"
                              for i in range(4)) + " }"  # fmt: skip
    schema = build_schema(settings)
    for _ in range(repeat):  # the second time, from the validation cache
        assert codes(asyncio.run(schema.execute(TOO_DEEP))) == ["QUERY_TOO_COMPLEX"]
        assert codes(asyncio.run(schema.execute(aliases))) == ["QUERY_TOO_COMPLEX"]


def test_a_repeated_document_is_validated_once() -> None:
    """Validation (limits included) was half of an adClicks request's time when the
    cache missed on every request."""
    schema = build_schema(Settings())
    document = "{ topAds(window: {lastMinutes: 7}) { source } }"
    validations = _get_validate_cache(1000)  # strawberry's shared ValidationCache
    before = validations.cache_info().misses
    for _ in range(5):
        asyncio.run(schema.execute(document))  # no context: fails after validation
    assert validations.cache_info().misses - before == 1
