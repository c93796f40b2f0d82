"""``python -m bench``: the benchmarks' command line, against the local stack.

Benchmarks are tools of the repository, not the product: they are not in the installed
package, and ``adclick`` has no bench command. Run them from the repository's root with
``uv run python -m bench <benchmark> [options]``. Each command imports its benchmark
when it runs, so one benchmark's dependencies (matplotlib, psutil) load only for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from adclick.cli.app import run
from adclick.loadgen.generator import DEFAULT_ZIPF
from adclick.logs import configure_logging
from adclick.settings import get_settings
from adclick.stack import stack_up
from bench.environment import this_machine

# The design-scale dataset's options, shared by `bench query` and `bench close`.
DatasetHours = Annotated[int, typer.Option(min=1, help="Hours of per-minute rollups.")]
DatasetAds = Annotated[int, typer.Option(min=1, help="Distinct ads.")]
DatasetClicks = Annotated[int, typer.Option(min=1, help="Clicks per minute.")]
Skew = Annotated[float, typer.Option(min=0, help="Ad popularity skew (0: uniform).")]

bench_app = typer.Typer(
    name="python -m bench",
    help="Benchmarks: measured figures, never asserted (docs/benchmarks.md).",
    no_args_is_help=True,
)


@bench_app.command("ingest")
def bench_ingest(
    events: Annotated[int, typer.Option(min=1, help="Events to preload.")] = 1_000_000,
    workers: Annotated[int, typer.Option(min=1, help="Ingest worker processes.")] = 1,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the topic.")] = 8,
    ads: Annotated[int, typer.Option(min=1, help="Distinct ads.")] = 2_000_000,
    zipf: Annotated[float, typer.Option(min=0, help="Ad popularity skew (0: uniform).")] = 1.1,
    rate: Annotated[float, typer.Option(min=1, help="Produce rate of the freshness run.")] = 20_000,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of the freshness run.")] = 30,
    skip_freshness: Annotated[bool, typer.Option(help="Only the throughput run.")] = False,
    shards: Annotated[
        int, typer.Option(min=1, help="Shards (local clusters, `adclick up --shards`).")
    ] = 1,
) -> None:
    """Sustained events/s from a preloaded topic to committed rollups, and freshness.

    Runs on the local stack (brought up if needed) in a private database and fresh topics.
    Prints one JSON line per run, with the machine it ran on.
    """
    configure_logging()
    from bench import ingest as module

    settings = get_settings()
    machine = module.machine_line()
    result = module.throughput(settings, events, workers, zipf, ads, partitions, shards)
    typer.echo(json.dumps({"run": "throughput", "workers": workers, "zipf": zipf, "ads": ads,
                           "shards": shards, "machine": machine, **result}))  # fmt: skip
    if not skip_freshness:
        result = module.freshness(settings, rate, duration, workers, zipf, ads, partitions,
                                  shards)  # fmt: skip
        typer.echo(json.dumps({"run": "freshness", "workers": workers, "zipf": zipf,
                               "shards": shards, "machine": machine, **result}))  # fmt: skip


@bench_app.command("query")
def bench_query(
    hours: DatasetHours = 6,
    ads: DatasetAds = 2_000_000,
    clicks_per_minute: DatasetClicks = 700_000,
    zipf: Skew = DEFAULT_ZIPF,
    rebuild: Annotated[
        bool, typer.Option(help="Build the dataset even if the kept one has these parameters.")
    ] = False,
    repeat: Annotated[int, typer.Option(min=1, help="Requests per fast query kind.")] = 200,
    slow_repeat: Annotated[
        int, typer.Option(min=1, help="Requests per kind of window longer than an hour.")
    ] = 10,
    build_only: Annotated[bool, typer.Option(help="Only build (or keep) the dataset.")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Measure only the query kinds whose name contains this (repeatable)."),
    ] = None,
) -> None:
    """GraphQL latency of adClicks and topAds over hours of rollups at design scale.

    Builds the dataset (per-minute rollups written directly with COPY, not through Kafka)
    in a private database on the local stack, or keeps the one built before with the same
    parameters; then starts the API on it, waits until its window and hour indexes have
    loaded, and sends the documented operations over HTTP, one at a time. Prints one JSON
    line per query kind (p50/p99 in ms, and what ranked it), with the machine it ran on.
    """
    configure_logging()
    from bench import query as module
    from bench import query_dataset as dataset_module

    base = get_settings()
    machine = this_machine().describe()
    spec = dataset_module.DatasetSpec(hours, ads, clicks_per_minute, zipf)
    settings, dataset = dataset_module.ensure_dataset(base, spec, rebuild=rebuild)

    def emit(result: dict[str, Any]) -> None:
        typer.echo(json.dumps({**result, "machine": machine}))

    emit({"run": "dataset", "zipf": zipf, "hours": hours, "ads": ads,
          "clicks_per_minute": clicks_per_minute, "rows": dataset.rows,
          "build_s": dataset.build_s, "reused": dataset.reused})  # fmt: skip
    if build_only:
        return
    log_path = base.state_dir / "logs" / "bench-query-api.log"
    module.latency(settings, dataset, repeat=repeat, slow_repeat=slow_repeat,
                   log_path=log_path, emit=emit, only=only or [])  # fmt: skip


@bench_app.command("load")
def bench_load(
    hours: DatasetHours = 6,
    ads: DatasetAds = 2_000_000,
    clicks_per_minute: DatasetClicks = 700_000,
    zipf: Skew = DEFAULT_ZIPF,
    clients: Annotated[int, typer.Option(min=1, help="Concurrent HTTP clients.")] = 16,
    seconds: Annotated[float, typer.Option(min=1, help="Length of each phase.")] = 30.0,
    batch_ads: Annotated[int, typer.Option(min=1, help="Ads per adsClicks request.")] = 1000,
    subscribers: Annotated[
        int, typer.Option(min=0, help="WebSocket subscriptions held open in the mixed phase.")
    ] = 50,
    phase: Annotated[
        list[str] | None,
        typer.Option(help="Run only this phase (repeatable): adClicks, adsClicks, "
                     "topAds_standard, topAds_ad_hoc, mixed."),
    ] = None,
    workers: Annotated[
        list[int] | None,
        typer.Option(min=1, help="API worker processes; repeat to compare in one run "
                     "(--workers 1 --workers 2)."),
    ] = None,
) -> None:  # fmt: skip
    """Read load: concurrent clients against the API on the dataset of `python -m bench query`.

    Builds (or keeps) that dataset, starts the API on it, and for each phase has
    --clients clients on loopback send requests back to back for --seconds: single-ad
    adClicks, adsClicks batches, topAds over the standard and over ad-hoc windows, then
    all mixed with WebSocket subscribers connected. Prints one JSON line per phase:
    requests/s, ad reads/s, p50/p99/max per operation, and the API's CPU per request.
    """
    configure_logging()
    from bench import load as module
    from bench import query_dataset as dataset_module

    machine = this_machine().describe()
    unknown = sorted(set(phase or []) - set(module.PHASES))
    if unknown:
        raise typer.BadParameter(f"no phase {unknown[0]!r}", param_hint="--phase")
    base = get_settings()
    spec = dataset_module.DatasetSpec(hours, ads, clicks_per_minute, zipf)
    settings, dataset = dataset_module.ensure_dataset(base, spec, rebuild=False)

    def emit(result: dict[str, Any]) -> None:
        typer.echo(json.dumps({**result, "machine": machine}))

    for count in workers or [1]:
        module.run_load(
            settings, dataset, clients=clients, seconds=seconds, batch_ads=batch_ads,
            subscribers=subscribers, phases=phase or list(module.PHASES),
            log_path=base.state_dir / "logs" / "bench-load-api.log", emit=emit,
            workers=count,
        )  # fmt: skip


@bench_app.command("close")
def bench_close(
    hours: DatasetHours = 6,
    ads: DatasetAds = 2_000_000,
    clicks_per_minute: DatasetClicks = 700_000,
    zipf: Skew = DEFAULT_ZIPF,
    country: Annotated[
        list[str], typer.Option(help="Close a list filtered to this country (repeatable).")
    ] = ["US"],  # noqa: B006 - typer reads the default, nobody mutates it
) -> None:
    """Time to close one minute (every window and filter) at the design scale.

    Uses the dataset of `python -m bench query` (built first if missing): the closer catches
    up to a watermark ten minutes back, then the watermark advances a minute at a time
    and each close is timed, index refresh included. Prints one JSON line.
    """
    configure_logging()
    from bench import query_dataset as dataset_module

    machine = this_machine().describe()
    spec = dataset_module.DatasetSpec(hours, ads, clicks_per_minute, zipf)
    settings, _dataset = dataset_module.ensure_dataset(get_settings(), spec, rebuild=False)
    filters = [{"country": [code]} for code in country]
    from bench.close import close_minutes

    result = close_minutes(settings, filters)
    typer.echo(json.dumps({**result, "zipf": zipf, "hours": hours, "ads": ads,
                           "clicks_per_minute": clicks_per_minute,
                           "machine": machine}))  # fmt: skip


@bench_app.command("tiering")
def bench_tiering(
    events: Annotated[int, typer.Option(min=1, help="Raw clicks in the day-chunk.")] = 2_000_000,
    ads: DatasetAds = 2_000_000,
    zipf: Skew = DEFAULT_ZIPF,
) -> None:
    """Export throughput (rows/s) and cold vs hot size per million clicks.

    Fills one day-chunk of raw_clicks in a private database, then times `adclick
    maintain` exporting, verifying, cataloguing and dropping it. Prints one JSON line.
    """
    configure_logging()
    machine = this_machine().describe()
    base = get_settings()
    cold_dir = (base.state_dir / "bench-cold").resolve()
    from bench.tiering import tiering

    result = tiering(base, events, ads, zipf, cold_dir)
    typer.echo(json.dumps({**result, "zipf": zipf, "machine": machine}))


@bench_app.command("day")
def bench_day(
    hours: Annotated[
        int, typer.Option(min=0, max=23, help="Hours of the day's rollups before ingest (0: none).")
    ] = 0,
    ads: DatasetAds = 2_000_000,
    clicks_per_minute: DatasetClicks = 700_000,
    zipf: Skew = DEFAULT_ZIPF,
    events: Annotated[int, typer.Option(min=1, help="Events the ingest run consumes.")] = 3_000_000,
    workers: Annotated[int, typer.Option(min=1, help="Ingest worker processes.")] = 2,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the topic.")] = 8,
    minute: Annotated[
        int,
        typer.Option(
            min=0, max=59, help="Start ingest at this minute of hour H (its chunk then holds M)."
        ),
    ] = 0,
    history_days: Annotated[
        int,
        typer.Option(
            min=0,
            max=3660,
            help="Days of chunks up to the day, the older ones sparse (90: retention's).",
        ),
    ] = 0,
    full_hours: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Build only the last N hours' per-minute rollups in full (clicks_1h is full "
            "for every hour; the hours before get one row per chunk): hour 23 on a smaller disk.",
        ),
    ] = None,
    query_repeat: Annotated[
        int, typer.Option(min=0, help="Runs of each API rollup query after ingest (0: none).")
    ] = 200,
    compare: Annotated[
        bool,
        typer.Option(help="Run hour 0 minute 0 first, then hour H minute M, and print ratios."),
    ] = False,
    rebuild: Annotated[
        bool, typer.Option(help="Build the day's rollups even if the kept ones match.")
    ] = False,
) -> None:
    """Ingest late in a design-scale day: events/s, WAL per click, hit ratio, chunk sizes.

    Builds (or keeps) the rollups of a UTC day up to hour H by COPY, as `bench query` does,
    in a private database, then runs the real ingest (loadgen into a fresh topic, ingest
    workers) at hour H (minute M) of that day. With --history-days, the days before it hold
    sparse chunks (planning sees retention's chunk count); then the API's SQL reads are
    timed, planning apart. Prints one JSON line per run (and one of ratios with --compare),
    with the machine it ran on.
    """
    configure_logging()
    from bench import day as module
    from bench import query_dataset as dataset_module

    machine = this_machine().describe()
    settings = get_settings()

    def measure(at_hour: int, at_minute: int) -> dict[str, Any]:
        # Built up to the end of the hour ingest starts in (minute M > 0), or up to it.
        built = at_hour + (1 if at_minute else 0)
        spec = dataset_module.DatasetSpec(
            built, ads, clicks_per_minute, zipf, full_hours=full_hours
        )
        run = module.DayRun(
            spec, events, workers, partitions, at_minute, history_days, query_repeat
        )
        result: dict[str, Any] = module.run_day(settings, run, rebuild=rebuild)
        typer.echo(json.dumps({"run": "day", **result, "machine": machine}))
        return result

    if compare and (hours, minute) != (0, 0):
        baseline = measure(0, 0)
        late = measure(hours, minute)
        typer.echo(json.dumps({"run": "ratio", "hours": hours, "minute": minute, "zipf": zipf,
                               **module.ratios(baseline, late), "machine": machine}))  # fmt: skip
    else:
        measure(hours, minute)


@bench_app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(min=1, help="Wall time of the traffic.")] = 60.0,
    rate: Annotated[float, typer.Option(min=1, help="Steady events/s.")] = 20_000.0,
    speedup: Annotated[
        float, typer.Option(min=1, help="Event time per wall time (24: a day in an hour).")
    ] = 24.0,
    burst_rate: Annotated[
        float, typer.Option(min=1, help="Events/s during the bursts (a minute every 15).")
    ] = 50_000.0,
    ads: DatasetAds = 100_000,
    query_clients: Annotated[int, typer.Option(min=0, help="Concurrent query clients.")] = 4,
    query_rate: Annotated[
        float, typer.Option(min=0.1, help="Requests/s of all query clients together.")
    ] = 20.0,
    faults: Annotated[bool, typer.Option(help="Inject the faults.")] = True,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory of the timeline and process logs [<state>/bench-soak]."),
    ] = None,
) -> None:
    """A production day, compressed: every process at once, traffic, queries and faults.

    Runs on the local stack (a database and topics of its own): ingest --workers 2, the
    closer, two APIs and maintain --every, with steady traffic and bursts, query clients
    and a subscriber, while faults are injected on a schedule (docs/benchmarks.md). At the
    end it compares every rollup with the truth of what was sent, reconciles, counts the
    dead letters and the subscriber's lists, and lists every process exit that was not
    planned. Prints one JSON line; writes timeline.json and timeline.png under --out.
    """
    configure_logging()
    from bench import soak as module

    machine = this_machine().describe()
    plan = module.SoakPlan(
        minutes=minutes, rate=rate, speedup=speedup, burst_rate=max(burst_rate, rate),
        ads=ads, query_clients=query_clients, query_rate=query_rate, faults=faults,
    )  # fmt: skip
    settings = get_settings()
    stack_up(settings, lambda message: typer.echo(f"stack: {message}", err=True))
    out_dir = out if out is not None else settings.state_dir / "bench-soak"
    result = module.run_soak(settings, plan, out_dir, say=lambda line: typer.echo(line, err=True))
    typer.echo(json.dumps({"run": "soak", **result, "machine": machine}, default=str))


def main() -> None:
    """Run the benchmarks' CLI; adclick's errors as one clear line and exit 1."""
    run(bench_app, "bench")
