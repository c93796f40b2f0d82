"""``adclick loadgen``: synthetic clicks into Kafka, with an exact truth file."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from adclick.cli.app import DAY_S, app, number_option
from adclick.errors import InvalidEventError
from adclick.events import parse_timestamp_ms
from adclick.kafka.clients import create_topics, make_producer
from adclick.loadgen.generator import (
    DEFAULT_ADS,
    DEFAULT_COUNTRY_MIX,
    DEFAULT_EVENT_RATE,
    DEFAULT_MAX_LATENESS_S,
    DEFAULT_ZIPF,
    LoadSpec,
    generate,
    parse_country_mix,
)
from adclick.loadgen.send import DeliveryErrors, send_blocks
from adclick.loadgen.truth import TruthAccumulator
from adclick.settings import get_settings

_DEFAULT_MIX_TEXT = ",".join(f"{code}:{weight:g}" for code, weight in DEFAULT_COUNTRY_MIX)


@app.command()
def loadgen(
    events: Annotated[
        int | None, typer.Option(min=0, help="Messages to send (duplicates and invalid included).")
    ] = None,
    rate: Annotated[
        float | None,
        number_option(
            min=0.001,
            max=10_000_000,
            help="Pace the sends at this many messages per second.",
        ),
    ] = None,
    duration: Annotated[
        float | None,
        number_option(
            min=0.001,
            max=365 * DAY_S,
            help="With --rate: send for this many seconds.",
        ),
    ] = None,
    ads: Annotated[int, typer.Option(min=1, help="Distinct ads (ad0000001, ...).")] = DEFAULT_ADS,
    zipf: Annotated[
        float,
        number_option(min=0.0, max=10.0, help="Zipf exponent of ad popularity; 0 is uniform."),
    ] = DEFAULT_ZIPF,
    uniform: Annotated[
        bool, typer.Option("--uniform", help="Every ad equally popular (--zipf 0).")
    ] = False,
    countries: Annotated[
        str, typer.Option(help="Country mix, CODE:WEIGHT,...; weights are normalised.")
    ] = _DEFAULT_MIX_TEXT,
    duplicate_fraction: Annotated[
        float,
        number_option(
            min=0.0,
            max=1.0,
            help="Share of sends that re-send an earlier click byte for byte.",
        ),
    ] = 0.0,
    late_fraction: Annotated[
        float,
        number_option(
            min=0.0,
            max=1.0,
            help="Share of clicks stamped behind the stream time (they still count).",
        ),
    ] = 0.0,
    max_lateness: Annotated[
        float,
        number_option(
            min=0.001,
            max=30 * DAY_S,
            help="Most seconds a late click lies behind the stream.",
        ),
    ] = DEFAULT_MAX_LATENESS_S,
    invalid_fraction: Annotated[
        float,
        number_option(
            min=0.0,
            max=1.0,
            help="Share of sends that are invalid (not clicks, not counted).",
        ),
    ] = 0.0,
    start: Annotated[
        str | None,
        typer.Option(
            help="Event time of the first send, ISO-8601 (no offset means UTC). Default: now "
            "minus the run's event-time span; now when paced with --rate."
        ),
    ] = None,
    event_rate: Annotated[
        float | None,
        number_option(
            min=0.001,
            max=10_000_000,
            help=f"Sends per second of event time. Default: {DEFAULT_EVENT_RATE:,.0f}, or "
            "--rate when paced, so that event time follows the wall clock.",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seed; with the same options and --start, the same bytes. Default: random, "
            "printed in the summary.",
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False, help="Write the expected counts of the valid, unique clicks here."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Send synthetic click events to the clicks topic, and optionally their exact truth.

    Give --events N to send N messages as fast as possible, or --rate R with --duration S
    (or with --events N) to pace them. Ads follow a Zipf popularity, countries a mix; every
    click has its own click_id ("<seed>-<send index>"), so identical clicks still count.
    Duplicates, late clicks and invalid messages are mixed in at the given fractions; invalid
    kinds rotate (not JSON, not an object, missing field, bad ip, timestamp or country, wrong
    type, empty field).

    The truth file is one CSV with the header minute,ad_id,country,clicks: minute is the
    minute's start in ISO-8601 UTC (2024-07-09T00:01:00Z); a row with an empty country is
    the ad's total over all countries in that minute, the other rows count one country.
    Rows are sorted by minute, ad_id and country. It counts only the valid, unique clicks,
    which is exactly what the ingest must count.

    Messages go to the clicks topic (ADCLICK_CLICKS_TOPIC), keyed by ad_id, created with
    adclick's other topics when missing.

    A summary line ends the run: sent, unique valid, duplicates, late, invalid, elapsed and
    events/s. The run fails (exit 1) if any message was not delivered.
    """
    settings = get_settings()
    total, paced_rate = _plan(events, rate, duration)
    run_seed = seed if seed is not None else secrets.randbelow(2**31)
    now_ms = time.time_ns() // 1_000_000
    effective_event_rate = event_rate or paced_rate or DEFAULT_EVENT_RATE
    try:
        mix = parse_country_mix(countries)
        span_ms = int(total * 1000 / effective_event_rate)
        if start is not None:
            try:
                start_ms = parse_timestamp_ms(start.strip())
            except InvalidEventError as exc:
                raise ValueError(f"--start: {exc.detail}") from None
        else:
            start_ms = now_ms if paced_rate else now_ms - span_ms
        spec = LoadSpec(
            events=total,
            start_ms=start_ms,
            seed=run_seed,
            ads=ads,
            zipf=0.0 if uniform else zipf,
            countries=mix,
            duplicate_fraction=duplicate_fraction,
            late_fraction=late_fraction,
            max_lateness_s=max_lateness,
            invalid_fraction=invalid_fraction,
            event_rate=effective_event_rate,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    err = Console(stderr=True)
    # The ingest dead-letters clicks stamped too far ahead of the wall clock, so the truth
    # would not match what it counts. Paced sends happen no earlier than start + index/rate.
    lead_ms = spec.start_ms - now_ms if paced_rate else spec.start_ms + spec.span_ms - now_ms
    if lead_ms > settings.max_clock_skew.total_seconds() * 1000:
        err.print(
            "[yellow]warning:[/] event times run ahead of the wall clock by more than "
            "max_clock_skew; the ingest will dead-letter those clicks and the truth will not "
            "match"
        )
    if max_lateness * 1000 >= settings.dedup_horizon.total_seconds() * 1000:
        err.print(
            "[yellow]warning:[/] --max-lateness reaches the dedup horizon; the ingest will "
            "dead-letter the most delayed clicks and the truth will not match"
        )

    create_topics(settings)
    errors = DeliveryErrors()
    producer = make_producer(
        settings, **{"on_delivery": errors.callback, "delivery.report.only.error": True}
    )
    accumulator = TruthAccumulator.for_spec(spec) if truth is not None else None
    try:
        with _progress(err, total, disable=quiet or not err.is_terminal) as advance:
            report = send_blocks(
                generate(spec),
                producer,
                settings.clicks_topic,
                rate=paced_rate,
                truth=accumulator,
                on_progress=advance,
                delivery_errors=errors,
            )
    except KeyboardInterrupt:
        # Part of a block may have gone out: no truth is better than a wrong one.
        err.print("interrupted: no truth file written")
        raise typer.Exit(130) from None
    typer.echo(f"{report.summary()}  seed {run_seed}")
    if accumulator is not None and truth is not None:
        rows = accumulator.write_csv(truth)
        typer.echo(f"truth: {truth} ({rows:,} rows, {accumulator.total:,} clicks)")


def _plan(
    events: int | None, rate: float | None, duration: float | None
) -> tuple[int, float | None]:
    """(messages to send, pacing rate or None) from the mode options."""
    if events is not None and duration is not None:
        raise typer.BadParameter("give --events or --duration, not both", param_hint="--events")
    if duration is not None:
        if rate is None:
            raise typer.BadParameter("--duration needs --rate", param_hint="--duration")
        return round(rate * duration), rate
    if events is None:
        raise typer.BadParameter(
            "give --events N, or --rate R with --duration S", param_hint="--events / --rate"
        )
    return events, rate


@contextmanager
def _progress(console: Console, total: int, *, disable: bool) -> Iterator[Callable[[int], None]]:
    progress = Progress(
        TextColumn("loadgen"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )
    task = progress.add_task("send", total=total)

    def advance(count: int) -> None:
        progress.advance(task, count)

    with progress:
        yield advance
