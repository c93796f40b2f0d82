"""``adclick config``: the reference it writes, the syntax it promises, what ``show`` hides.

The drift test (docs/configuration.md equals the generated reference) and the validation
tests by setting are in test_configuration.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import adclick.cli.config  # noqa: F401  (registers the config commands on app)
from adclick.cli.app import app
from adclick.cli.config import MASK, masked
from adclick.errors import ConfigurationError
from adclick.settings import Settings, get_settings
from adclick.settings_docs import configuration_reference


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    # get_settings reads once per process; each test sets its own environment.
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_reference_output_writes_the_generated_reference(tmp_path: Path) -> None:
    output = tmp_path / "configuration.md"
    result = CliRunner().invoke(app, ["config", "reference", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert output.read_text() == configuration_reference()


def test_the_reference_shows_defaults_whatever_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = configuration_reference()
    monkeypatch.setenv("ADCLICK_TOPIC_PARTITIONS", "3")
    monkeypatch.setenv("ADCLICK_DIMENSION_SETS", '[["os"]]')
    assert configuration_reference() == expected
    assert '| `[["country"]]` |' in expected
    assert "| `PT1M` |" in expected  # ADCLICK_ALLOWED_LATENESS, rendered as ISO-8601


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PT60S", timedelta(seconds=60)),
        ("P7D", timedelta(days=7)),
        ("00:01:30", timedelta(seconds=90)),
    ],
)
def test_durations_in_the_environment_as_the_reference_says(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: timedelta
) -> None:
    monkeypatch.setenv("ADCLICK_ALLOWED_LATENESS", value)
    assert Settings().allowed_lateness == expected


def test_plain_seconds_are_refused_in_the_environment_as_the_reference_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADCLICK_ALLOWED_LATENESS", "60")
    with pytest.raises(ValidationError, match="allowed_lateness"):
        Settings()


def test_the_file_takes_seconds_arrays_and_tables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "adclick.toml"
    config.write_text(
        "allowed_lateness = 90\n"
        'dimension_sets = [["country"], ["os", "device"]]\n'
        'kafka_config = {"security.protocol" = "SASL_SSL"}\n'
    )
    monkeypatch.setenv("ADCLICK_CONFIG_FILE", str(config))
    settings = Settings()
    assert settings.allowed_lateness == timedelta(seconds=90)
    assert settings.dimension_sets == [["country"], ["device", "os"]]
    assert settings.kafka_config == {"security.protocol": "SASL_SSL"}


def test_show_prints_every_setting_with_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ADCLICK_DATABASE_URL", "postgresql://ads:s3cr@t@db.example:5432/ads?sslmode=require"
    )
    monkeypatch.setenv(
        "ADCLICK_KAFKA_CONFIG",
        '{"security.protocol": "SASL_SSL", "sasl.username": "ads", "sasl.password": "hunter2"}',
    )
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.output.splitlines())
    assert set(lines) == set(Settings().as_environment())
    assert lines["ADCLICK_DATABASE_URL"] == (
        f"postgresql://ads:{MASK}@db.example:5432/ads?sslmode=require"
    )
    assert lines["ADCLICK_KAFKA_CONFIG"] == (
        f'{{"security.protocol": "SASL_SSL", "sasl.username": "ads", "sasl.password": "{MASK}"}}'
    )
    assert "s3cr" not in result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("ADCLICK_API_TOKEN", "abc", MASK),
        ("ADCLICK_DB_PASSWORD", "abc", MASK),
        ("ADCLICK_CLIENT_SECRET", "abc", MASK),
        ("ADCLICK_DATABASE_URL", "postgresql://ads@db/ads", "postgresql://ads@db/ads"),
        ("ADCLICK_DATABASE_URL", "postgresql://ads:pw@db/ads", f"postgresql://ads:{MASK}@db/ads"),
        (
            "ADCLICK_DATABASE_URL",
            "postgresql://db/ads?user=ads&password=pw",
            f"postgresql://db/ads?user=ads&password={MASK}",
        ),
        (
            "ADCLICK_DATABASE_URL",
            "host=db password=pw user=ads",
            f"host=db password={MASK} user=ads",
        ),
        ("ADCLICK_KAFKA_CONFIG", '{"ssl.key.pem": "KEY"}', f'{{"ssl.key.pem": "{MASK}"}}'),
        ("ADCLICK_CLICKS_TOPIC", "ad-clicks", "ad-clicks"),
    ],
)
def test_masked(name: str, value: str, shown: str) -> None:
    assert masked(name, value) == shown


def test_show_names_invalid_settings_without_their_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADCLICK_TOPIC_PARTITIONS", "0")
    monkeypatch.setenv("ADCLICK_KAFKA_CONFIG", '{"sasl.password": 12345678}')
    result = CliRunner().invoke(app, ["config", "show"])
    assert isinstance(result.exception, ConfigurationError)
    message = str(result.exception)
    assert "ADCLICK_TOPIC_PARTITIONS" in message
    assert "ADCLICK_KAFKA_CONFIG" in message
    assert "12345678" not in message
