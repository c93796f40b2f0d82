"""The writer's memory of which per-minute rollup keys are certainly not stored yet."""

from __future__ import annotations

from adclick.ingest.new_keys import BACKOFF_MS, KEEP_MS, MinuteAdKeys, NewKeyTracker, floor_after

M = 60_000
T0 = 1_720_483_200_000  # 2024-07-09 00:00 UTC, a minute boundary


def of(keys: list[tuple[int, str]]) -> MinuteAdKeys:
    return MinuteAdKeys.of([m for m, _ in keys], [a for _, a in keys])


def new(tracker: NewKeyTracker, keys: list[tuple[int, str]]) -> list[bool]:
    return tracker.new_mask(of(keys)).tolist()


def remember(tracker: NewKeyTracker, keys: list[tuple[int, str]]) -> None:
    tracker.remember(of(keys))


def test_a_tracker_claims_nothing_until_it_is_given_a_floor() -> None:
    tracker = NewKeyTracker()
    assert new(tracker, [(T0, "ad1"), (T0 + 10 * M, "ad2")]) == [False, False]


def test_keys_from_the_floor_on_are_new_until_written() -> None:
    tracker = NewKeyTracker()
    tracker.reset(T0 + M)
    assert new(tracker, [(T0, "ad1"), (T0 + M, "ad1"), (T0 + 2 * M, "ad1")]) == [
        False,  # before the floor: stored rows may hold it
        True,
        True,
    ]
    # One ad once per country: the same (minute, ad) several times.
    remember(tracker, [(T0 + M, "ad1"), (T0 + M, "ad1"), (T0 + M, "ad2")])
    assert new(
        tracker, [(T0 + M, "ad1"), (T0 + M, "ad2"), (T0 + M, "ad3"), (T0 + 2 * M, "ad1")]
    ) == [
        False,
        False,
        True,
        True,
    ]
    remember(tracker, [(T0 + M, "ad3"), (T0 + 2 * M, "ad1")])
    assert new(tracker, [(T0 + M, "ad3"), (T0 + 2 * M, "ad1"), (T0 + M, "ad4")]) == [
        False,
        False,
        True,
    ]
    assert len(tracker) == 4


def test_minutes_that_fall_out_of_the_window_are_no_longer_claimed() -> None:
    tracker = NewKeyTracker()
    tracker.reset(T0)
    remember(tracker, [(T0, "ad1")])
    remember(tracker, [(T0 + KEEP_MS + M, "ad2")])
    # T0 was forgotten, so nothing of it can be claimed any more, not even unseen ads.
    assert new(tracker, [(T0, "ad1"), (T0, "ad9"), (T0 + M, "ad9")]) == [False, False, True]
    assert tracker.floor_ms == T0 + M
    assert len(tracker) == 1


def test_a_refused_claim_stops_claims_for_a_while() -> None:
    tracker = NewKeyTracker()
    tracker.reset(T0)
    remember(tracker, [(T0 + 4 * M, "ad1")])
    # The keys of the refused statement.
    tracker.refused(of([(T0 + 5 * M, "ad1"), (T0 + 3 * M, "ad2")]))
    later = T0 + 5 * M + BACKOFF_MS
    assert new(tracker, [(T0 + 6 * M, "ad2"), (later - M, "ad2"), (later, "ad2")]) == [
        False,
        False,
        True,
    ]


def test_the_floor_is_the_minute_after_the_newest_stored_event() -> None:
    assert floor_after([T0 + 5_000, None, T0 + 2 * M + 59_999]) == T0 + 3 * M
    assert floor_after([T0]) == T0 + M
    tracker = NewKeyTracker()
    tracker.reset(floor_after([None]))  # nothing stored for these partitions
    assert new(tracker, [(T0, "ad1")]) == [True]
