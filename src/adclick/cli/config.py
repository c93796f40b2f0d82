"""``adclick config``: the settings in effect, and the configuration reference."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from adclick.cli.app import app
from adclick.settings import get_settings
from adclick.settings_docs import configuration_reference

config_app = typer.Typer(help="Settings: what is in effect, and the reference.")
app.add_typer(config_app, name="config")

_SECRET_NAME = re.compile(r"password|secret|token", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


def _masked(name: str, value: str) -> str:
    if _SECRET_NAME.search(name):
        return "********"
    return _URL_PASSWORD.sub(r"\1********@", value)


@config_app.command("show")
def show() -> None:
    """Print the settings in effect as ADCLICK_...= lines, secrets masked."""
    for name, value in get_settings().as_environment().items():
        typer.echo(f"{name}={_masked(name, value)}")


@config_app.command("reference")
def reference(
    output: Annotated[
        Path | None, typer.Option(help="Write the Markdown to this file instead of stdout.")
    ] = None,
) -> None:
    """Print (or write) the configuration reference, generated from the settings class."""
    text = configuration_reference()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)
