"""The GraphQL contract in graphql/ and the token rules."""

from __future__ import annotations

import inspect
from pathlib import Path

from strawberry.types.base import StrawberryOptional

from adclick.api.auth import authenticate, new_token
from adclick.api.schema import build_schema
from adclick.cli.api import schema_sdl
from adclick.settings import Role, Settings

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "graphql" / "schema.graphql"


def test_the_exported_schema_is_the_schema_the_code_serves() -> None:
    assert SCHEMA_FILE.read_text() == schema_sdl(Settings()), (
        "graphql/schema.graphql is out of date: "
        "run `adclick graphql-schema > graphql/schema.graphql` and review the change"
    )


def test_filter_fields_follow_the_configured_dimensions() -> None:
    sdl = schema_sdl(Settings(query_dimensions=["channel"], dimension_sets=[["country"]]))
    click_filter = sdl[sdl.index("input ClickFilter") :].split("}")[0]
    assert "channel: [String!]" in click_filter and "country: [String!]" in click_filter
    assert "device" not in click_filter


def test_tokens_are_checked_against_their_digest_and_carry_their_role() -> None:
    reader, reader_entry = new_token("frontend", Role.READER)
    admin, admin_entry = new_token("ops", Role.ADMIN)
    settings = Settings(api_tokens=[reader_entry, admin_entry])
    assert reader not in settings.model_dump_json()  # only the digest is configured
    assert authenticate(f"Bearer {reader}", settings).role is Role.READER
    principal = authenticate(f"bearer {admin}", settings)
    assert principal.role is Role.ADMIN and principal.may(Role.READER)
    assert not authenticate(f"Bearer {reader}", settings).may(Role.ADMIN)
    assert authenticate(f"Bearer {reader}x", settings).role is None
    assert authenticate(reader, settings).role is None  # no scheme
    assert authenticate(None, settings).role is None
    anonymous = settings.model_copy(update={"api_allow_anonymous": True})
    assert authenticate(None, anonymous).role is Role.READER
    assert authenticate("Bearer wrong", anonymous).role is None  # a bad token never reads


def test_every_nullable_argument_may_be_left_out() -> None:
    """A client may leave out any argument the schema makes nullable (GraphQL's rule): its
    resolver must take the argument's absence, not fail with a TypeError (a 500)."""
    schema = build_schema(Settings())
    fields = [
        field
        for name in ("Query", "Mutation", "Subscription")
        for field in schema.get_type_by_name(name).fields  # type: ignore[union-attr]
        if field.base_resolver is not None
    ]
    assert any(field.arguments for field in fields)
    for field in fields:
        parameters = inspect.signature(field.base_resolver.wrapped_func).parameters
        for argument in field.arguments:
            if isinstance(argument.type, StrawberryOptional):
                parameter = parameters[argument.python_name]
                assert parameter.default is not inspect.Parameter.empty, (
                    f"{field.python_name}({argument.python_name}) cannot be left out"
                )
