"""``adclick config``: the settings in effect, and the configuration reference."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from adclick.cli.app import app
from adclick.redact import MASK, mask_secrets
from adclick.settings import get_settings
from adclick.settings_docs import configuration_reference

config_app = typer.Typer(help="Settings: what is in effect, and the reference.")
app.add_typer(config_app, name="config")

# Names of secrets: settings, and the librdkafka properties inside ADCLICK_KAFKA_CONFIG
# (sasl.password, ssl.key.password, sasl.oauthbearer.client.secret, ...). ssl.key.pem holds
# a private key under a name without any of the three words.
_SECRET_NAME = re.compile(r"password|secret|token|key\.pem", re.IGNORECASE)


def _masked_object(text: str) -> str | None:
    """A JSON object setting with its secret members masked; None if ``text`` is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return json.dumps({k: MASK if _SECRET_NAME.search(k) else v for k, v in data.items()})


def masked(name: str, value: str) -> str:
    """``value`` of the variable ``name`` as ``config show`` prints it: secrets masked."""
    if _SECRET_NAME.search(name):
        return MASK
    if value.startswith("{"):
        masked_object = _masked_object(value)
        if masked_object is not None:
            return masked_object
    return mask_secrets(value)


@config_app.command("show")
def show() -> None:
    """Print the settings in effect as ADCLICK_...= lines, secrets masked.

    The values come from the environment, the file named by ADCLICK_CONFIG_FILE and the
    defaults, in that order. Settings whose name contains password, secret or token, such
    properties and ssl.key.pem inside ADCLICK_KAFKA_CONFIG, and the password in
    ADCLICK_DATABASE_URL are printed as ********. An invalid setting is reported by its
    variable name (exit status 1).
    """
    for name, value in get_settings().as_environment().items():
        typer.echo(f"{name}={masked(name, value)}")


@config_app.command("reference")
def reference(
    output: Annotated[
        Path | None, typer.Option(help="Write the Markdown to this file instead of stdout.")
    ] = None,
) -> None:
    """Print (or write) the configuration reference, generated from the settings class.

    docs/configuration.md is its output: regenerate it with
    ``adclick config reference --output docs/configuration.md`` after changing a setting.
    """
    text = configuration_reference()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)
