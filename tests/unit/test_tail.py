"""The tail follower on real temporary files: following, rotation, restarts, checkpoints."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adclick.collect.checkpoints import PathState, StateFileError, StateStore, TailState
from adclick.collect.follow import Follower


class Clock:
    """A clock the test moves by hand (for the rotated files' quiet period)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "app.log"


@pytest.fixture
def followers() -> Iterator[list[Follower]]:
    """Every follower a test makes, closed at its end."""
    made: list[Follower] = []
    yield made
    for follower in made:
        follower.close()


def append(path: Path, text: str) -> None:
    with path.open("ab") as out:
        out.write(text.encode())


def offset_of(follower: Follower, path: Path) -> int:
    """Where the checkpoint of ``path``'s current file stands."""
    current = follower.snapshot()[str(path)].current
    assert current is not None
    return current.offset


def texts(follower: Follower, max_lines: int = 10_000) -> list[str]:
    return [line.data.decode() for line in follower.poll(max_lines)]


Follow = Callable[..., Follower]


@pytest.fixture
def follow(clock: Clock, followers: list[Follower]) -> Follow:
    """Makes followers on the test's clock, with a 5 s quiet period for rotated files."""

    def make(
        *paths: Path,
        state: TailState | None = None,
        from_end: bool = False,
        warnings: list[str] | None = None,
        max_line_bytes: int = 1 << 20,
    ) -> Follower:
        follower = Follower(
            list(paths),
            state,
            from_end=from_end,
            rotate_wait_s=5.0,
            max_line_bytes=max_line_bytes,
            clock=clock,
            warn=(warnings if warnings is not None else []).append,
        )
        followers.append(follower)
        return follower

    return make


def test_follows_lines_as_they_are_appended(log: Path, follow: Follow) -> None:
    append(log, "one\ntwo\n")
    follower = follow(log)
    lines = follower.poll()
    assert [(line.data, line.offset, line.name) for line in lines] == [
        (b"one", 0, str(log)),
        (b"two", 4, str(log)),
    ]
    assert texts(follower) == []
    append(log, "three\n")
    assert texts(follower) == ["three"]
    assert offset_of(follower, log) == 14


def test_a_partial_line_waits_for_its_newline(log: Path, follow: Follow) -> None:
    append(log, "one\ntw")
    follower = follow(log)
    assert texts(follower) == ["one"]
    assert offset_of(follower, log) == 4
    append(log, "o")
    assert texts(follower) == []
    append(log, "\r\n")
    assert texts(follower) == ["two"]


def test_from_end_skips_existing_lines_but_not_the_line_being_written(
    log: Path,
    follow: Follow,
) -> None:
    append(log, "old\nolder\npart")
    follower = follow(log, from_end=True)
    assert texts(follower) == []
    append(log, "ial\nnew\n")
    assert texts(follower) == ["partial", "new"]


def test_a_file_that_appears_later_is_read_from_its_start(
    log: Path,
    follow: Follow,
) -> None:
    follower = follow(log, from_end=True)
    assert texts(follower) == []
    append(log, "first\n")
    assert texts(follower) == ["first"]


def test_rename_rotation_finishes_the_old_file_then_reads_the_new(
    log: Path,
    follow: Follow,
    clock: Clock,
) -> None:
    append(log, "a\n")
    follower = follow(log)
    assert texts(follower) == ["a"]
    with log.open("ab") as writer:  # the application keeps its file open across the rename
        writer.write(b"b\n")
        writer.flush()
        log.rename(log.with_name("app.log.1"))
        append(log, "new-1\n")
        writer.write(b"c\n")  # written before the application reopened its log
    lines = follower.poll()
    assert [(line.data, line.name) for line in lines] == [
        (b"b", str(log.with_name("app.log.1"))),
        (b"c", str(log.with_name("app.log.1"))),
        (b"new-1", str(log)),
    ]
    state = follower.snapshot()[str(log)]
    assert len(state.rotated) == 1  # still waiting for late writes to the old file
    clock.now += 5
    assert texts(follower) == []
    assert follower.snapshot()[str(log)].rotated == ()


def test_a_rotated_files_unterminated_last_line_is_sent_when_it_is_given_up(
    log: Path,
    follow: Follow,
    clock: Clock,
) -> None:
    append(log, "a\nlast-without-newline")
    follower = follow(log)
    assert texts(follower) == ["a"]
    log.rename(log.with_name("app.log.1"))
    append(log, "new\n")
    assert texts(follower) == ["new"]
    clock.now += 5
    assert texts(follower) == ["last-without-newline"]
    assert follower.snapshot()[str(log)].rotated == ()


def test_a_deleted_file_is_read_to_its_end(log: Path, follow: Follow, clock: Clock) -> None:
    append(log, "a\n")
    follower = follow(log)
    with log.open("ab") as writer:
        assert texts(follower) == ["a"]
        log.unlink()
        writer.write(b"b\n")
    assert texts(follower) == ["b"]
    clock.now += 5
    assert texts(follower) == []
    assert follower.snapshot()[str(log)] == PathState(None, ())


def test_copytruncate_takes_the_unread_rest_from_the_copy(
    log: Path,
    follow: Follow,
) -> None:
    append(log, "[line one with enough bytes to fill the whole 64-byte fingerprint]\n")
    follower = follow(log)
    assert len(texts(follower)) == 1
    append(log, "unread before the copy\n")
    shutil.copyfile(log, log.with_name("app.log.1"))
    os.truncate(log, 0)
    append(log, "after\n")
    assert texts(follower) == ["unread before the copy", "after"]


def test_copytruncate_is_noticed_even_when_the_file_grew_past_the_old_offset(
    log: Path,
    follow: Follow,
) -> None:
    append(log, "old-1\n")
    follower = follow(log)
    assert texts(follower) == ["old-1"]
    shutil.copyfile(log, log.with_name("app.log.1"))
    os.truncate(log, 0)
    append(log, "new content, longer than the old\n")
    assert texts(follower) == ["new content, longer than the old"]


def test_copytruncate_prefers_the_newest_file_that_matches(log: Path, follow: Follow) -> None:
    old = log.with_name("app.log.0")
    old.write_text("ab\nfrom an old rotation\n")  # begins like the current file
    os.utime(old, (1_000_000, 1_000_000))
    append(log, "ab\n")
    follower = follow(log)
    assert texts(follower) == ["ab"]
    append(log, "cd\n")
    shutil.copyfile(log, log.with_name("app.log.1"))
    os.truncate(log, 0)
    assert texts(follower) == ["cd"]


def test_truncation_without_a_copy_starts_over_and_warns_about_unread_bytes(
    log: Path,
    follow: Follow,
) -> None:
    warnings: list[str] = []
    append(log, "a\n")
    follower = follow(log, warnings=warnings)
    assert texts(follower) == ["a"]
    append(log, "partial")
    assert texts(follower) == []  # the follower saw 9 bytes, sent 2
    os.truncate(log, 0)
    append(log, "x\n")
    assert texts(follower) == ["x"]
    assert len(warnings) == 1 and "bytes 2..9" in warnings[0]


def test_restart_from_a_checkpoint_loses_and_repeats_nothing(
    log: Path,
    follow: Follow,
) -> None:
    append(log, "1\n2\n3")
    first = follow(log)
    assert texts(first) == ["1", "2"]
    state = first.snapshot()
    first.close()
    append(log, "\n4\n")
    second = follow(log, state=state)
    assert texts(second) == ["3", "4"]


def test_restart_only_covers_the_lines_that_were_polled(
    log: Path,
    follow: Follow,
) -> None:
    append(log, "".join(f"{n}\n" for n in range(10)))
    first = follow(log)
    assert texts(first, max_lines=4) == ["0", "1", "2", "3"]
    state = first.snapshot()
    assert texts(first) == [str(n) for n in range(4, 10)]  # sent, but not checkpointed
    second = follow(log, state=state)
    assert texts(second) == [str(n) for n in range(4, 10)]


def test_restart_after_rename_rotation_finishes_the_rotated_file_first(
    log: Path,
    follow: Follow,
) -> None:
    append(log, "a\n")
    first = follow(log)
    assert texts(first) == ["a"]
    state = first.snapshot()
    first.close()
    append(log, "b\npart")
    log.rename(log.with_name("app.log.1"))
    append(log, "new\n")
    second = follow(log, state=state)
    lines = second.poll()
    assert [(line.data, line.name) for line in lines] == [
        (b"b", str(log.with_name("app.log.1"))),
        (b"new", str(log)),
    ]


def test_restart_after_copytruncate_finds_the_copy(
    log: Path,
    follow: Follow,
) -> None:
    append(log, "a\n")
    first = follow(log)
    assert texts(first) == ["a"]
    state = first.snapshot()
    first.close()
    append(log, "b\n")
    shutil.copyfile(log, log.with_name("app.log.1"))
    os.truncate(log, 0)
    append(log, "c\n")
    assert texts(follow(log, state=state)) == ["b", "c"]


def test_restart_warns_when_a_checkpointed_file_is_gone(
    log: Path,
    follow: Follow,
) -> None:
    append(log, "a\n")
    first = follow(log)
    assert texts(first) == ["a"]
    state = first.snapshot()
    first.close()
    log.unlink()
    append(log, "other file\n")
    warnings: list[str] = []
    assert texts(follow(log, state=state, warnings=warnings)) == ["other file"]
    assert len(warnings) == 1 and "cannot find" in warnings[0]


def test_restart_of_a_file_that_did_not_exist_yet_reads_it_from_its_start(
    log: Path,
    follow: Follow,
) -> None:
    state = follow(log, from_end=True).snapshot()
    append(log, "written while down\n")
    assert texts(follow(log, state=state, from_end=True)) == ["written while down"]


def test_a_line_longer_than_the_limit_is_sent_in_pieces(
    log: Path,
    follow: Follow,
) -> None:
    append(log, "x" * 25 + "\nok\n")
    assert texts(follow(log, max_line_bytes=10)) == ["x" * 10, "x" * 10, "x" * 5, "ok"]


def test_several_files_share_the_line_budget_fairly(
    tmp_path: Path,
    follow: Follow,
) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    append(a, "a\n" * 10)
    append(b, "b\n" * 10)
    follower = follow(a, b)
    assert set(texts(follower, max_lines=10)) == {"a"}
    assert set(texts(follower, max_lines=10)) == {"b"}


def test_state_store_round_trips_and_keeps_other_paths(
    tmp_path: Path, log: Path, follow: Follow
) -> None:
    append(log, "a\n")
    follower = follow(log)
    texts(follower)
    path = tmp_path / "state" / "tail.json"
    store = StateStore(path)
    store.save({"/elsewhere.log": PathState()})
    store.save(follower.snapshot())
    store.close()
    reopened = StateStore(path)
    try:
        assert reopened.load() == {"/elsewhere.log": PathState(), **follower.snapshot()}
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    finally:
        reopened.close()


def test_state_store_refuses_a_second_user_and_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "tail.json"
    store = StateStore(path)
    with pytest.raises(StateFileError, match="in use"):
        StateStore(path)
    store.close()
    path.write_text("{not json")
    store = StateStore(path)
    try:
        with pytest.raises(StateFileError, match="unreadable"):
            store.load()
    finally:
        store.close()
