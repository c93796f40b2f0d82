"""Configuration: the reference cannot drift from the code, bad values fail by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from adclick.resources import REPO_ROOT
from adclick.settings import Settings
from adclick.settings_docs import configuration_reference


def test_the_committed_reference_is_generated_from_the_settings() -> None:
    committed = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert committed == configuration_reference(), (
        "docs/configuration.md is stale: run "
        "`uv run adclick config reference --output docs/configuration.md`"
    )


def test_every_setting_is_documented() -> None:
    reference = configuration_reference()
    for name, field in Settings.model_fields.items():
        assert f"`ADCLICK_{name.upper()}`" in reference
        assert field.description, f"setting {name} has no description"


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("ADCLICK_TOPIC_PARTITIONS", "0", "topic_partitions"),
        ("ADCLICK_DIMENSION_SETS", '[["bad name"]]', "dimension_sets"),
        ("ADCLICK_DIMENSION_SETS", '[["country"], ["country"]]', "dimension_sets"),
        ("ADCLICK_DIMENSION_SETS", '[["clicks"]]', "dimension_sets"),
        ("ADCLICK_ALLOWED_LATENESS", "soon", "allowed_lateness"),
        ("ADCLICK_INGEST_BATCH_SIZE", "many", "ingest_batch_size"),
    ],
)
def test_invalid_configuration_fails_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as failure:
        Settings()
    assert field in str(failure.value)


def test_settings_survive_the_trip_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = Settings(dimension_sets=[["country"], ["device", "os"]], ingest_batch_size=7)
    for name, value in original.as_environment().items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


def test_a_config_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "adclick.toml"
    config.write_text('clicks_topic = "from-file"\ningest_batch_size = 123\n')
    monkeypatch.setenv("ADCLICK_CONFIG_FILE", str(config))
    monkeypatch.setenv("ADCLICK_INGEST_BATCH_SIZE", "456")
    settings = Settings()
    assert settings.clicks_topic == "from-file"
    assert settings.ingest_batch_size == 456


def test_every_command_reports_bad_settings_by_name_without_their_values() -> None:
    environment = {
        **os.environ,
        "ADCLICK_TOPIC_PARTITIONS": "0",
        "ADCLICK_KAFKA_CONFIG": '{"sasl.password": 12345678}',
    }
    result = subprocess.run(
        [sys.executable, "-m", "adclick", "ingest", "--exit-when-idle", "1"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "ADCLICK_TOPIC_PARTITIONS" in result.stderr
    assert "ADCLICK_KAFKA_CONFIG" in result.stderr
    assert "Traceback" not in result.stderr
    assert "12345678" not in result.stderr


@pytest.mark.parametrize(
    "dimensions", [["a", "b", "c", "d", "e"], ["country", "a", "b", "c", "d", "e"]]
)
def test_a_dimension_set_too_wide_for_an_index_entry_is_refused(dimensions: list[str]) -> None:
    # Five attributes of 128 four-byte characters and the ad id: a key over 2,704 bytes,
    # which PostgreSQL refuses to index (every such click would be refused).
    with pytest.raises(ValidationError, match="too wide"):
        Settings(dimension_sets=[dimensions])
