"""Log lines: JSON objects for machines, text on a terminal, as configured."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from adclick.logs import configure_logging
from adclick.settings import get_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    logging.basicConfig(force=True, handlers=[logging.StreamHandler()])


def test_json_lines_carry_level_logger_and_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ADCLICK_LOG_FORMAT", "json")
    configure_logging()
    logging.getLogger("adclick.test").info("closed %d minutes", 3)
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["level"] == "INFO"
    assert record["logger"] == "adclick.test"
    assert record["message"] == "closed 3 minutes"
    assert record["time"] and record["process"]


def test_text_lines_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ADCLICK_LOG_FORMAT", "text")
    configure_logging(logging.DEBUG)
    logging.getLogger("adclick.test").debug("one batch")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("DEBUG MainProcess adclick.test: one batch")


def test_auto_is_json_when_stderr_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ADCLICK_LOG_FORMAT", raising=False)
    configure_logging()  # under pytest, stderr is captured: not a terminal
    logging.getLogger("adclick.test").warning("watch out")
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["level"] == "WARNING"
