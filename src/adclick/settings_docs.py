"""The configuration reference (docs/configuration.md), generated from the settings class.

``adclick config reference --output docs/configuration.md`` writes it; a test fails when
the committed file and the code disagree.
"""

from __future__ import annotations

from typing import Any

from adclick.settings import Settings

_INTRO = """\
# Configuration reference

Generated from `adclick.settings.Settings` by
`adclick config reference --output docs/configuration.md`; do not edit by hand.

Every setting is read from an environment variable `ADCLICK_<NAME>`. Settings can also
come from a TOML file named by `ADCLICK_CONFIG_FILE`, with the lower-case names below as
keys (`topic_partitions = 16`); environment variables win over the file. Lists and objects
are JSON in environment variables and TOML arrays and tables in the file. Durations are
ISO-8601 durations (`PT60S`, `P7D`) or `HH:MM:SS`; in the file a number is also read as
seconds (in an environment variable it is not). A command that reads the settings stops
at start on an invalid value, with a message naming the setting.
`adclick config show` prints the settings in effect, secrets masked.

| variable | type | default | meaning |
|---|---|---|---|
"""

_TYPE_NAMES = {
    "str": "text",
    "int": "integer",
    "float": "number",
    "Path": "path",
    "timedelta": "duration",
    "dict[str, str]": "JSON object",
    "list[list[str]]": "JSON list of lists",
}


def _type_name(annotation: Any) -> str:
    # Generic aliases (dict[str, str]) print as written; plain classes by their name.
    text = str(annotation) if getattr(annotation, "__args__", None) else annotation.__name__
    text = _TYPE_NAMES.get(text, text).replace("adclick.settings.", "")
    return text.replace("|", "\\|")  # inside a Markdown table cell


def configuration_reference() -> str:
    """The Markdown reference of every setting, its type, default and meaning."""
    # model_construct takes the defaults without reading the environment or the file, and
    # as_environment renders them exactly as a variable would be written.
    defaults = Settings.model_construct().as_environment()
    rows = []
    for name, field in Settings.model_fields.items():
        # A setting whose default is None has no variable: "unset".
        default = defaults.get(f"ADCLICK_{name.upper()}", "(unset)").replace("|", "\\|")
        description = (field.description or "").replace("|", "\\|")
        rows.append(
            f"| `ADCLICK_{name.upper()}` | {_type_name(field.annotation)} | `{default}` "
            f"| {description} |"
        )
    return _INTRO + "\n".join(rows) + "\n"
