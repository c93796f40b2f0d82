"""The load generator: what it sends, and that its truth is exactly what an ingest must count."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adclick.errors import DependencyUnavailableError, InvalidEventError
from adclick.events import ClickEvent, parse_json_event
from adclick.loadgen import LoadSpec, Truth, TruthAccumulator, generate, read_truth, send_blocks
from adclick.loadgen.generator import INVALID_KINDS, ad_id, parse_country_mix
from adclick.loadgen.send import DeliveryErrors

START_MS = 1_720_483_200_000  # 2024-07-09T00:00:00Z


def spec(**overrides: object) -> LoadSpec:
    values: dict[str, object] = {
        "events": 30_000,
        "start_ms": START_MS,
        "seed": 7,
        "ads": 1_000,
        "duplicate_fraction": 0.05,
        "late_fraction": 0.1,
        "max_lateness_s": 120.0,
        "invalid_fraction": 0.04,
        "event_rate": 100.0,  # 30,000 sends span five minutes of event time
        "block_size": 7_000,  # several blocks, the last one partial
    }
    values.update(overrides)
    return LoadSpec(**values)  # type: ignore[arg-type]


def messages(load: LoadSpec) -> list[tuple[bytes, bytes]]:
    return [
        (key, payload)
        for block in generate(load)
        for key, payload in zip(block.keys, block.payloads, strict=True)
    ]


def test_truth_is_what_parsing_and_deduplicating_every_payload_gives() -> None:
    load = spec()
    accumulator = TruthAccumulator.for_spec(load)
    unique: dict[str, ClickEvent] = {}
    first_payload: dict[str, bytes] = {}
    sent = duplicates = invalid = late = 0
    for block in generate(load):
        accumulator.add(block)
        late += block.late
        for key, payload in zip(block.keys, block.payloads, strict=True):
            sent += 1
            try:
                event = parse_json_event(payload)
            except InvalidEventError:
                invalid += 1
                continue
            assert key == event.ad_id.encode()
            assert event.to_json() == payload  # the wire format is ClickEvent.to_json()
            if event.click_id in unique:
                duplicates += 1
                assert payload == first_payload[event.click_id]  # byte-identical re-send
            else:
                unique[event.click_id] = event
                first_payload[event.click_id] = payload
        assert block.duplicates + block.invalid + block.fresh == len(block.payloads)

    assert sent == load.events
    assert accumulator.to_truth() == Truth.from_events(unique.values())
    assert accumulator.total == len(unique) == sent - duplicates - invalid
    assert duplicates == pytest.approx(0.05 * sent, rel=0.15)
    assert invalid == pytest.approx(0.04 * sent, rel=0.15)
    assert late == pytest.approx(0.1 * len(unique), rel=0.15)


def test_the_counts_a_block_reports_match_its_messages() -> None:
    load = spec()
    seen: set[bytes] = set()
    for block in generate(load):
        duplicates = invalid = 0
        for payload in block.payloads:
            try:
                parse_json_event(payload)
            except InvalidEventError:
                invalid += 1
                continue
            duplicates += payload in seen
            seen.add(payload)
        assert (block.duplicates, block.invalid) == (duplicates, invalid)


def test_every_invalid_kind_is_sent_and_refused() -> None:
    load = spec(invalid_fraction=0.5, duplicate_fraction=0.0, events=2_000)
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for block in generate(load):
        kinds.update(block.invalid_kinds)
        for payload in block.payloads:
            try:
                parse_json_event(payload)
            except InvalidEventError as exc:
                reasons[exc.reason] += 1
    assert set(kinds) == set(INVALID_KINDS)
    assert sum(kinds.values()) == sum(reasons.values())
    assert set(reasons) == {"malformed", "missing_field", "invalid_field"}


def test_late_clicks_lie_behind_the_stream_by_at_most_max_lateness() -> None:
    load = spec(late_fraction=0.3, duplicate_fraction=0.0, invalid_fraction=0.0)
    max_late_ms = 120_000
    behind = 0
    for block in generate(load):
        for i, payload in enumerate(block.payloads):
            event = parse_json_event(payload)
            stream_ms = load.stream_ms(block.first_index + i)
            assert stream_ms - max_late_ms <= event.ts_ms <= stream_ms
            behind += event.ts_ms < stream_ms
    assert behind == pytest.approx(0.3 * load.events, rel=0.1)


def test_click_ids_are_unique_and_event_time_spans_the_run() -> None:
    load = spec(duplicate_fraction=0.0, invalid_fraction=0.0, late_fraction=0.0)
    events = [parse_json_event(payload) for _, payload in messages(load)]
    assert len({event.click_id for event in events}) == len(events)
    assert events[0].ts_ms == START_MS
    assert events[-1].ts_ms == START_MS + load.span_ms - 10  # one send per 10 ms
    assert [e.ts_ms for e in events] == sorted(e.ts_ms for e in events)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    assert messages(spec()) == messages(spec())
    assert messages(spec()) != messages(spec(seed=8))


def test_ad_popularity_follows_zipf_and_uniform_is_flat() -> None:
    def clicks_per_ad(load: LoadSpec) -> list[int]:
        counts: Counter[int] = Counter()
        for block in generate(load):
            counts.update(block.ad.tolist())
        return sorted((counts.get(ad, 0) for ad in range(1, load.ads + 1)), reverse=True)

    plain = {"duplicate_fraction": 0.0, "invalid_fraction": 0.0, "events": 50_000}
    skewed = clicks_per_ad(spec(zipf=1.1, **plain))
    assert skewed[0] > 50 * statistics.median(skewed)
    # The top ranks are scattered over the id range, not ad0000001, ad0000002, ...
    uniform = clicks_per_ad(spec(zipf=0.0, **plain))
    assert uniform[0] < 2 * statistics.mean(uniform)
    assert min(uniform) > 0


def test_ad_ids_are_zero_padded_and_within_range() -> None:
    assert ad_id(42) == "ad0000042"
    load = spec(ads=10, events=2_000, invalid_fraction=0.0)
    ids = {parse_json_event(payload).ad_id for _, payload in messages(load)}
    assert ids == {ad_id(n) for n in range(1, 11)}
    assert LoadSpec(events=1, start_ms=START_MS, seed=1, ads=12_345_678).ad_width == 8


def test_countries_follow_the_mix() -> None:
    mix = parse_country_mix("us:3, DE:1")
    load = spec(countries=mix, invalid_fraction=0.0, duplicate_fraction=0.0, events=20_000)
    assert load.country_codes == ("DE", "US")
    counts = Counter(parse_json_event(payload).country for _, payload in messages(load))
    assert set(counts) == {"DE", "US"}
    assert counts["US"] / load.events == pytest.approx(0.75, abs=0.02)


@pytest.mark.parametrize("text", ["US", "US:x", "U1:1", "US:-1", "US:0"])
def test_a_bad_country_mix_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        spec(countries=parse_country_mix(text))


@pytest.mark.parametrize(
    "overrides",
    [
        {"duplicate_fraction": 0.6, "invalid_fraction": 0.4},
        {"late_fraction": 1.5},
        {"ads": 0},
        {"zipf": -1.0},
        {"event_rate": 0.0},
        {"events": -1},
        {"start_ms": 946_684_800_000},  # late clicks would fall before 2000: the parser refuses
    ],
)
def test_an_impossible_spec_is_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        spec(**overrides)


def test_the_truth_file_reads_back_as_written(tmp_path: Path) -> None:
    load = spec()
    accumulator = TruthAccumulator.for_spec(load)
    for block in generate(load):
        accumulator.add(block)
    path = tmp_path / "truth.csv"
    rows = accumulator.write_csv(path)

    truth = read_truth(path)
    assert truth == accumulator.to_truth()
    assert rows == len(truth.by_ad_minute) + len(truth.by_ad_minute_country)
    lines = path.read_text().splitlines()
    assert lines[0] == "minute,ad_id,country,clicks"
    assert len(lines) == rows + 1
    minute, _, country, _ = lines[1].split(",")
    assert (minute, country) == ("2024-07-08T23:58:00Z", "")  # late clicks reach back 2 min
    # Sorted by minute, ad and country, each (minute, ad) total before its countries.
    keys = [tuple(line.split(",")[:3]) for line in lines[1:]]
    assert keys == sorted(keys)
    for line in lines[1:]:
        m, a, c, n = line.split(",")
        minute_s = int(datetime.fromisoformat(m).timestamp())
        if c:
            assert truth.by_ad_minute_country[(a, minute_s, c)] == int(n)
        else:
            assert truth.by_ad_minute[(a, minute_s)] == int(n)
    totals: Counter[tuple[str, int]] = Counter()
    for (ad, minute_s, _), clicks in truth.by_ad_minute_country.items():
        totals[(ad, minute_s)] += clicks
    assert totals == truth.by_ad_minute


def test_the_accumulator_merges_its_pending_clicks_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import adclick.loadgen.truth as truth_module

    monkeypatch.setattr(truth_module, "_MERGE_EVERY", 1_000)  # merge many times
    load = spec()
    accumulator = TruthAccumulator.for_spec(load)
    events: list[ClickEvent] = []
    for block in generate(load):
        accumulator.add(block)
    seen: set[str] = set()
    for _, payload in messages(load):
        try:
            event = parse_json_event(payload)
        except InvalidEventError:
            continue
        if event.click_id not in seen:
            seen.add(event.click_id)
            events.append(event)
    assert accumulator.to_truth() == Truth.from_events(events)


class FakeProducer:
    """Records messages; refuses every ``full_every``-th produce once with BufferError."""

    def __init__(self, full_every: int = 0) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.full_every = full_every
        self.calls = 0
        self.polls = 0
        self.remaining_after_flush = 0

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.calls += 1
        if self.full_every and self.calls % self.full_every == 0:
            raise BufferError("queue full")
        self.messages.append((topic, value, key))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float) -> int:
        return self.remaining_after_flush


def test_sending_produces_every_message_once_in_order_despite_full_buffers() -> None:
    load = spec()
    producer = FakeProducer(full_every=997)
    accumulator = TruthAccumulator.for_spec(load)
    progress: list[int] = []
    report = send_blocks(
        generate(load), producer, "clicks", truth=accumulator, on_progress=progress.append
    )
    assert [(key, value) for _, value, key in producer.messages] == messages(load)
    assert {topic for topic, _, _ in producer.messages} == {"clicks"}
    assert report.sent == sum(progress) == load.events
    assert report.unique == accumulator.total
    assert report.sent == report.unique + report.duplicates + report.invalid
    assert sum(report.invalid_kinds.values()) == report.invalid


def test_sending_paces_to_the_rate() -> None:
    producer = FakeProducer()
    report = send_blocks(generate(spec(events=500)), producer, "clicks", rate=2_000.0)
    # 500 messages at 2,000/s take at least 0.25 s, less the last step of 20 that is sent
    # at once. (How much longer a slow machine takes is not the pacing's promise.)
    assert report.elapsed_s >= (500 - 20) / 2_000.0
    assert len(producer.messages) == 500


def test_sending_fails_loudly_when_a_delivery_fails() -> None:
    errors = DeliveryErrors()
    errors.callback("broker gone", None)
    with pytest.raises(DependencyUnavailableError, match="1 of 100 messages failed"):
        send_blocks(generate(spec(events=100)), FakeProducer(), "t", delivery_errors=errors)
    producer = FakeProducer()
    producer.remaining_after_flush = 3
    with pytest.raises(DependencyUnavailableError, match="3 of 100 messages were still"):
        send_blocks(generate(spec(events=100)), producer, "t")


@pytest.mark.parametrize(
    "args",
    [[], ["--rate", "10"], ["--duration", "5"], ["--events", "5", "--duration", "5"]],
)
def test_the_command_needs_one_clear_mode(args: list[str]) -> None:
    from adclick.cli.app import app
    from adclick.cli.loadgen import loadgen

    assert loadgen.__doc__
    result = CliRunner().invoke(app, ["loadgen", *args])
    assert result.exit_code == 2
    assert "--events" in result.output or "--duration" in result.output
