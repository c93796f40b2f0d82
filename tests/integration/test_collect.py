"""The collectors against a real broker: what ``produce`` and ``tail`` put into Kafka."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer
from rich.console import Console
from typer.testing import CliRunner

import adclick.cli.collect as collect_cli
from adclick.cli.app import app
from adclick.collect.produce import EXIT_REJECTED, LineFormat, run_produce
from adclick.collect.tail import run_tail
from adclick.events import parse_log_line
from adclick.settings import Settings

# The collect commands without the rest of the CLI, as a separate process (signal tests).
CLI = "import adclick.cli.collect; from adclick.cli.app import app; app()"


def log_line(n: int, ad: str | None = None) -> str:
    """A valid log line, unique per ``n``."""
    return (
        f"[AdClickEvent] {ad or f'ad{n % 7:03d}'}, 2024-07-09 00:{n // 60 % 60:02d}:{n % 60:02d},"
        f" user-{n}, 10.0.{n // 256 % 256}.{n % 256}, USA"
    )


def write(path: Path, text: str) -> None:
    with path.open("a") as out:
        out.write(text)


def consume(settings: Settings, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    """Every message of ``topic`` as (key, decoded JSON), waiting for ``expected``, then a
    little longer so that extra messages (duplicates) would show too."""
    consumer = Consumer(
        settings.kafka_client_config(
            **{
                "group.id": f"collect-test-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
            }
        )
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        settle_until = None
        while settle_until is None or time.monotonic() < settle_until:
            for message in consumer.consume(1000, 0.5):
                value = message.value()
                if message.error() is None and value is not None:
                    messages.append((message.key(), orjson.loads(value)))
            if settle_until is None and (len(messages) >= expected or time.monotonic() > deadline):
                settle_until = time.monotonic() + 2
    finally:
        consumer.close()
    return messages


def click_ids(messages: list[Any]) -> Counter[str]:
    return Counter(value["click_id"] for _key, value in messages)


def expected_ids(lines: list[str]) -> Counter[str]:
    return Counter(parse_log_line(line).click_id for line in lines)


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner whose commands use the test's settings."""
    monkeypatch.setattr(collect_cli, "get_settings", lambda: settings)
    return CliRunner()


def test_produce_sends_good_lines_and_dead_letters_bad_ones(
    settings: Settings, cli: CliRunner, tmp_path: Path
) -> None:
    good = [log_line(n) for n in range(30)]
    source = tmp_path / "clicks.log"
    source.write_text("\n".join([*good[:10], "garbage", *good[10:], "[AdClickEvent] x, y"]) + "\n")

    result = cli.invoke(app, ["produce", "--format", "log", str(source)])

    assert result.exit_code == EXIT_REJECTED, result.output
    assert "line 11: rejected (malformed)" in result.output
    assert "sent 30 event(s)" in result.output
    clicks = consume(settings, settings.clicks_topic, 30)
    assert click_ids(clicks) == expected_ids(good)
    assert all(key == value["ad_id"].encode() for key, value in clicks)
    dead = [value for _key, value in consume(settings, settings.dlq_topic, 2)]
    assert sorted((d["line"], d["reason"], d["source"]) for d in dead) == [
        (11, "malformed", "produce"),
        (32, "malformed", "produce"),
    ]
    assert {d["payload"] for d in dead} == {"garbage", "[AdClickEvent] x, y"}


def test_produce_from_stdin_with_only_good_lines_exits_0(
    settings: Settings, cli: CliRunner
) -> None:
    events = [parse_log_line(log_line(n)) for n in range(5)]
    text = "".join(event.to_json().decode() + "\n" for event in events)

    result = cli.invoke(app, ["produce", "-"], input=text)

    assert result.exit_code == 0, result.output
    clicks = consume(settings, settings.clicks_topic, 5)
    assert sorted(value["click_id"] for _key, value in clicks) == sorted(e.click_id for e in events)
    assert consume(settings, settings.dlq_topic, 0, timeout_s=1) == []


def test_produce_exits_1_when_kafka_does_not_confirm_delivery(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{probe.getsockname()[1]}"
    unreachable = settings.model_copy(update={"kafka_bootstrap_servers": nobody})
    monkeypatch.setattr(collect_cli, "get_settings", lambda: unreachable)
    source = tmp_path / "clicks.log"
    source.write_text(log_line(1) + "\n")

    result = CliRunner().invoke(
        app, ["produce", "-f", "log", "--delivery-timeout", "1", str(source)]
    )

    assert result.exit_code == 1, result.output
    assert "did not confirm delivery" in result.output


def test_tail_across_runs_rotations_and_restarts_sends_each_line_once(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "tail-state.json"
    written: list[str] = []

    def run() -> int:
        summary = run_tail(
            settings,
            [log],
            state_path=state,
            poll_interval_s=0.05,
            exit_when_idle_s=0.5,
            rotate_wait_s=0.1,
        )
        return summary.sent

    def add(lines: list[str], path: Path = log) -> None:
        write(path, "".join(f"{line}\n" for line in lines))
        written.extend(lines)

    add([log_line(n) for n in range(50)])
    assert run() == 50

    # Rename rotation while the collector is down, with a line completed after the rename.
    add([log_line(n) for n in range(50, 75)])
    write(log, log_line(75)[:20])
    log.rename(tmp_path / "app.log.1")
    write(tmp_path / "app.log.1", log_line(75)[20:] + "\n")
    written.append(log_line(75))
    add([log_line(n) for n in range(76, 100)])
    assert run() == 50

    # Copy-truncate while the collector is down.
    add([log_line(n) for n in range(100, 110)])
    (tmp_path / "app.log.1").rename(tmp_path / "app.log.2")
    shutil.copyfile(log, tmp_path / "app.log.1")
    os.truncate(log, 0)
    add([log_line(n) for n in range(110, 120)])
    assert run() == 20

    assert run() == 0  # nothing new: nothing sent again
    assert click_ids(consume(settings, settings.clicks_topic, 120)) == expected_ids(written)


def test_tail_follows_live_writes_and_rotations(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state.json"
    written = [log_line(n) for n in range(300)]
    stop = threading.Event()
    sent: list[int] = []

    def follow() -> None:
        summary = run_tail(
            settings,
            [log],
            state_path=state,
            poll_interval_s=0.02,
            rotate_wait_s=0.3,
            checkpoint_interval_s=0.1,
            stop=stop,
        )
        sent.append(summary.sent)

    def wait_until_caught_up() -> None:
        # Rotations are minutes apart in life: let the collector see the current file first
        # (a file created and copy-truncated before the collector ever saw it is unknowable).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                current = orjson.loads(state.read_bytes())["files"][str(log)]["current"]
                if current and (current["inode"], current["offset"]) == (
                    log.stat().st_ino,
                    log.stat().st_size,
                ):
                    return
            time.sleep(0.05)
        raise AssertionError("the collector did not catch up")

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        writer = log.open("a")
        for n, line in enumerate(written):
            if n == 100:  # rename rotation; the application reopens its log 10 lines later
                wait_until_caught_up()
                log.rename(tmp_path / "app.log.1")
            if n == 110:
                writer.close()
                writer = log.open("a")
            if n == 190:
                wait_until_caught_up()
            if n == 200:  # copy-truncate, probably before lines 190..199 were read
                writer.flush()
                shutil.copyfile(log, tmp_path / "app.log.2")
                os.truncate(log, 0)
            # Two writes per line: the collector must not send half a line.
            writer.write(line[:30])
            writer.flush()
            writer.write(line[30:] + "\n")
            writer.flush()
            if n % 20 == 0:
                time.sleep(0.05)
        writer.close()
        clicks = consume(settings, settings.clicks_topic, len(written))
    finally:
        stop.set()
        thread.join(30)
    # Copy-truncate loses lines written between the copy and the truncation; here none
    # are written in between, so every line must arrive exactly once.
    assert click_ids(clicks) == expected_ids(written)
    assert sent == [len(written)]


def test_tail_dead_letters_invalid_lines_with_file_and_offset(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    log.write_text(f"{log_line(1)}\nnot a click\n")
    summary = run_tail(settings, [log], state_path=tmp_path / "state.json", exit_when_idle_s=0.3)
    assert (summary.sent, summary.rejected) == (1, 1)
    dead = [value for _key, value in consume(settings, settings.dlq_topic, 1)]
    assert [(d["source"], d["file"], d["offset"], d["payload"]) for d in dead] == [
        ("tail", str(log), len(log_line(1)) + 1, "not a click")
    ]


def test_tail_stops_on_sigterm_after_flushing_and_checkpointing(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state.json"
    lines = [log_line(n) for n in range(1000)]
    log.write_text("".join(f"{line}\n" for line in lines))
    environment = {**os.environ, **settings.as_environment()}
    command = [sys.executable, "-c", CLI, "tail", str(log), "--state", str(state)]
    process = subprocess.Popen(
        [*command, "--checkpoint-interval", "60"],  # only the stop may write the offset
        env=environment,
        stderr=subprocess.PIPE,
    )
    try:
        clicks = consume(settings, settings.clicks_topic, len(lines))
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()
    assert click_ids(clicks) == expected_ids(lines)
    checkpoint = orjson.loads(state.read_bytes())["files"][str(log)]["current"]
    assert checkpoint["offset"] == log.stat().st_size

    # A restart finds nothing new to send.
    again = subprocess.run(
        [*command, "--exit-when-idle", "0.5"], env=environment, capture_output=True, timeout=60
    )
    assert again.returncode == 0, again.stderr.decode()
    assert "sent 0 event(s)" in again.stderr.decode()


def test_tail_after_kill_9_resends_at_most_the_unsaved_lines(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state.json"
    lines = [log_line(n) for n in range(3000)]
    log.write_text("".join(f"{line}\n" for line in lines))
    environment = {**os.environ, **settings.as_environment()}
    command = [sys.executable, "-c", CLI, "tail", str(log), "--state", str(state)]
    process = subprocess.Popen(
        [*command, "--checkpoint-lines", "500", "--checkpoint-interval", "60"],
        env=environment,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        saved = 0
        while saved == 0 and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
                saved = orjson.loads(state.read_bytes())["files"][str(log)]["current"]["offset"]
            time.sleep(0.01)
        process.kill()
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert saved > 0
    checkpointed = orjson.loads(state.read_bytes())["files"][str(log)]["current"]["offset"]
    unsaved = log.read_bytes()[checkpointed:].count(b"\n")

    again = subprocess.run(
        [*command, "--exit-when-idle", "0.5"], env=environment, capture_output=True, timeout=60
    )
    assert again.returncode == 0, again.stderr.decode()
    received = click_ids(consume(settings, settings.clicks_topic, len(lines)))
    assert set(received) == set(expected_ids(lines))  # nothing lost
    # Repeats come only from after the last checkpoint (the ingest counts them once).
    assert sum(received.values()) - len(lines) <= unsaved


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_tail_dead_letters_huge_lines_once_and_checkpoints_past_them(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    state = tmp_path / "state.json"
    control = b"\x01" * 400_000  # six bytes each once escaped in JSON
    huge = b"x" * 1_500_000  # over the 1 MiB limit of a line
    log.write_bytes(b"".join(line + b"\n" for line in (log_line(1).encode(), control, huge)))
    log.open("ab").write(log_line(2).encode() + b"\n")

    def run() -> Any:
        return run_tail(settings, [log], state_path=state, exit_when_idle_s=0.3)

    summary = run()
    assert (summary.sent, summary.rejected) == (2, 2)
    checkpoint = orjson.loads(state.read_bytes())["files"][str(log)]["current"]
    assert checkpoint["offset"] == log.stat().st_size
    dead = [value for _key, value in consume(settings, settings.dlq_topic, 2)]
    offset = len(log_line(1)) + 1
    assert [
        (d["reason"], d["offset"], d["payload_bytes"], d["payload_sha256"], d["payload_truncated"])
        for d in sorted(dead, key=lambda d: d["offset"])
    ] == [
        ("malformed", offset, len(control), sha256(control), True),
        ("too_large", offset + len(control) + 1, len(huge), sha256(huge), True),
    ]
    assert (run().sent, run().rejected) == (0, 0)  # restarts do not meet them again


def test_collectors_handle_messages_over_the_producers_size_limit(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator set the producers' message limit to 10 kB (say, to match the broker's).
    limited = settings.model_copy(
        update={"kafka_config": {**settings.kafka_config, "message.max.bytes": "10000"}}
    )
    log = tmp_path / "app.log"
    control = b"\x01" * 400_000  # its dead letter is ~100 kB: sent without its payload
    log.write_bytes(control + b"\n" + log_line(1).encode() + b"\n")
    summary = run_tail(limited, [log], state_path=tmp_path / "state.json", exit_when_idle_s=0.3)
    assert (summary.sent, summary.rejected) == (1, 1)

    # A valid click of ~17 kB (32 attributes of 128 four-byte characters) is dead-lettered,
    # and that dead letter too is too large: it goes without its payload.
    big = parse_log_line(log_line(2)).to_json()
    big_click = orjson.loads(big) | {f"a{n:02d}": "\U0001f600" * 128 for n in range(32)}
    source = tmp_path / "clicks.json"
    source.write_bytes(orjson.dumps(big_click) + b"\n" + big + b"\n")
    monkeypatch.setattr(collect_cli, "get_settings", lambda: limited)
    result = CliRunner().invoke(app, ["produce", str(source)])
    assert result.exit_code == EXIT_REJECTED, result.output
    assert "sent 1 event(s)" in result.output and "rejected 1 line(s)" in result.output

    dead = [value for _key, value in consume(settings, settings.dlq_topic, 2)]
    by_source = {d["source"]: d for d in dead}
    assert len(dead) == 2
    bare = by_source["tail"]
    assert (bare["reason"], bare["payload"], bare["payload_truncated"]) == ("malformed", None, True)
    assert (bare["payload_bytes"], bare["payload_sha256"]) == (len(control), sha256(control))
    refused = by_source["produce"]
    assert (refused["reason"], refused["line"], refused["payload"]) == ("too_large", 1, None)
    assert refused["payload_bytes"] > 16_000 and "refused the click" in refused["detail"]
    assert len(consume(settings, settings.clicks_topic, 2)) == 2  # one line each


@pytest.mark.timeout(60)  # opening a FIFO used to block tail forever
@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_tail_refuses_a_symlink_or_a_fifo_with_a_clear_error(
    cli: CliRunner, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "app.log"
    if kind == "symlink":
        (tmp_path / "real.log").write_text(log_line(1) + "\n")
        path.symlink_to(tmp_path / "real.log")
        problem = "is a symbolic link"
    else:
        os.mkfifo(path)
        problem = "is not a regular file (a FIFO)"
    result = cli.invoke(app, ["tail", str(path), "--state", str(tmp_path / "state.json")])
    assert result.exit_code == 2, result.output
    assert problem in " ".join(result.output.replace("│", " ").split())  # unwrap rich's box


def test_tail_restarts_over_files_not_named_in_utf8_and_names_them_in_dead_letters(
    settings: Settings, tmp_path: Path
) -> None:
    # A rotated name with a byte that is not UTF-8 failed every checkpoint, the first one
    # before anything was read: each restart crashed again.
    log = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.log"))
    state = tmp_path / "state.json"

    def run() -> tuple[int, int]:
        summary = run_tail(
            settings, [log], state_path=state, exit_when_idle_s=0.3, rotate_wait_s=0.1
        )
        return summary.sent, summary.rejected

    write(log, f"{log_line(1)}\nnot a click\n")
    assert run() == (1, 1)
    write(log, f"{log_line(2)}\n")
    rotated = os.fsencode(tmp_path) + b"/caf\xe9.log.\xff"
    os.rename(os.fsencode(log), rotated)
    write(log, f"{log_line(3)}\nagain not a click\n")
    assert run() == (2, 1)
    assert run() == (0, 0)  # restarts from its checkpoints: nothing sent twice
    assert click_ids(consume(settings, settings.clicks_topic, 3)) == expected_ids(
        [log_line(n) for n in (1, 2, 3)]
    )
    dead = [value for _key, value in consume(settings, settings.dlq_topic, 2)]
    escaped = f"{tmp_path}/caf\\xe9.log"
    assert sorted((d["file"], d["payload"]) for d in dead) == [
        (escaped, "again not a click"),
        (escaped, "not a click"),
    ]
    assert {base64.b64decode(d["file_base64"]) for d in dead} == {os.fsencode(log)}


def test_produce_names_a_file_not_named_in_utf8_in_its_dead_letters(
    settings: Settings, tmp_path: Path
) -> None:
    source = Path(os.fsdecode(os.fsencode(tmp_path) + b"/clicks-\xff.log"))
    source.write_text(f"{log_line(1)}\ngarbage\n")
    summary = run_produce(settings, source, LineFormat.LOG, console=Console(stderr=True))
    assert (summary.sent, summary.rejected) == (1, 1)
    [dead] = [value for _key, value in consume(settings, settings.dlq_topic, 1)]
    assert (dead["file"], dead["line"], dead["payload"]) == (
        f"{tmp_path}/clicks-\\xff.log",
        2,
        "garbage",
    )
    assert base64.b64decode(dead["file_base64"]) == os.fsencode(source)
