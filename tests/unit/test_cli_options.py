"""Every number option of every command is refused out of range with a usage error,
NaN and infinities included: click's float ranges let NaN through (it compares false with
any bound), and ``maintain --every nan`` ran pass after pass without a pause while
``--every 1e300`` overflowed the clock after the first."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

import pytest
import typer
import typer.main

from adclick.cli import app


def _numbers(command: Any, path: str = "adclick") -> Iterator[tuple[str, Any, Any]]:
    for name, sub in getattr(command, "commands", {}).items():
        yield from _numbers(sub, f"{path} {name}")
    for param in command.params:
        annotation = param.type_descriptor.annotation
        kinds = set(typing.get_args(annotation)) or {annotation}
        if kinds & {int, float}:
            yield path, command, param


OPTIONS = list(_numbers(typer.main.get_command(app)))


def test_the_walk_finds_the_number_options() -> None:
    found = {(path, param.name) for path, _command, param in OPTIONS}
    assert {("adclick maintain", "every"), ("adclick tail", "poll_interval")} <= found
    assert len(found) >= 20


@pytest.mark.parametrize(
    ("path", "command", "param"), OPTIONS, ids=[f"{p} --{o.name}" for p, _c, o in OPTIONS]
)
def test_a_number_option_takes_no_nan_infinity_or_absurd_value(
    path: str, command: Any, param: Any
) -> None:
    context = typer.Context(command, info_name=path)
    for value in ["nan", "inf", "-inf", "1e300", "-1e300"]:
        with pytest.raises(typer.BadParameter):
            param.process_value(context, value)
