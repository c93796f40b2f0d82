"""``adclick retention``, ``adclick maintain`` and ``adclick cold``: the data lifecycle."""

from __future__ import annotations

import csv
import getpass
import logging
import signal
import sys
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from adclick.cli.app import DAY_S, app, number_option
from adclick.db.connect import connect
from adclick.db.identity import check_databases
from adclick.errors import DependencyUnavailableError
from adclick.lifecycle.policies import (
    Policy,
    PolicyError,
    check_policy,
    describe,
    parse_retention,
    set_policy,
    stored_policies,
)
from adclick.logs import configure_logging
from adclick.settings import ProcessKind, Settings, get_settings

if TYPE_CHECKING:
    from adclick.lifecycle.recompute import Rollup
    from adclick.lifecycle.tiering import Chunk, MaintenanceReport

# DuckDB and Parquet (tiering, cold queries, recomputation) are imported inside the
# commands that use them: every adclick process loads this module, the API's included.

log = logging.getLogger(__name__)

# With --every, how long a pass that met an unavailable database waits at most before the
# next one.
MAINTAIN_RETRY_S = 30.0

retention_app = typer.Typer(help="Retention policies: how long data stays hot, then cold.")
app.add_typer(retention_app, name="retention")
cold_app = typer.Typer(
    help="Cold storage: the Parquet files of tiered chunks (personal data: operators only)."
)
app.add_typer(cold_app, name="cold")


@retention_app.command("show")
def retention_show() -> None:
    """Every relation's policy, and what is wrong with one that is not valid.

    With ADCLICK_SHARDS, every database's policies: one that is the same everywhere is
    shown once, one that differs in a database is shown per database and flagged.
    """
    settings = get_settings().for_process(ProcessKind.MAINTAIN)
    check_databases(settings, reads=False)
    # Each database keeps (and maintain applies) the policies of its own chunks: with
    # shards, one database's policies are not the others'.
    policies: dict[str, list[Policy]] = {}
    for database in settings.every_database():
        with connect(database) as conn:
            policies[database.describe_database()] = stored_policies(conn)
    differing = _differing_relations(policies)
    table = Table("relation", "hot", "cold", "updated", "by", "problem")
    if len(policies) > 1:
        table.add_column("database")
    for index, (where, stored) in enumerate(policies.items()):
        for p in stored:
            if index > 0 and p.relation not in differing:
                continue  # the same on every database: shown once
            updated = f"{p.updated_at:%Y-%m-%d %H:%M}" if p.updated_at else ""
            problem = _policy_problem(p, settings)
            if p.relation in differing:
                problem = "; ".join(
                    filter(None, [problem, "differs between databases: set it again"])
                )
            cells = [p.relation, describe(p.hot), describe(p.cold), updated, p.updated_by]
            everywhere = "every database" if p.relation not in differing else where
            table.add_row(*cells, problem, *([everywhere] if len(policies) > 1 else []))
    Console().print(table)


def _policy_problem(policy: Policy, settings: Settings) -> str:
    try:
        check_policy(policy.relation, policy.hot, policy.cold, settings, force=True)
    except PolicyError as exc:
        return str(exc)
    return ""


def _differing_relations(policies: dict[str, list[Policy]]) -> set[str]:
    """Relations whose hot or cold time is not the same in every database (or missing
    from one)."""
    seen: dict[str, set[tuple[object, object] | None]] = {}
    for stored in policies.values():
        by_relation = {p.relation: (p.hot, p.cold) for p in stored}
        for relation in {r for s in policies.values() for r in (p.relation for p in s)}:
            seen.setdefault(relation, set()).add(by_relation.get(relation))
    return {relation for relation, values in seen.items() if len(values) > 1}


@retention_app.command("set")
def retention_set(
    relation: Annotated[str, typer.Argument(help="raw_clicks, clicks_1m, clicks_1h, ...")],
    hot: Annotated[str, typer.Option(help="Time in the database: P7D, P90D or 'forever'.")],
    cold: Annotated[
        str, typer.Option(help="Then in cold storage: P365D, 'forever', or P0D (dropped).")
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Set it even though it drops clicks_1h, the only long-term data (the "
            "other refusals cannot be forced).",
        ),
    ] = False,
) -> None:
    """Change a relation's policy; `adclick maintain` applies it.

    Refused, with the reason and exit code 1: durations over 100 years (use 'forever'),
    hot 0, raw_clicks hot shorter than ADCLICK_DEDUP_HORIZON, minute and hour rollups hot
    shorter than ADCLICK_MINUTE_ROLLUP_RETENTION, and clicks_1h cold P0D unless --force.
    """
    settings = get_settings().for_process(ProcessKind.MAINTAIN)
    check_databases(settings, reads=False)
    # Every database holds the policies of its own chunks; a refusal comes from the first.
    for database in settings.every_database():
        with connect(database) as conn:
            policy = set_policy(
                conn,
                database,
                relation,
                parse_retention(hot),
                parse_retention(cold),
                getpass.getuser(),
                force=force,
            )
        where = f" on {database.describe_database()}" if settings.shards else ""
        typer.echo(
            f"{policy.relation}: hot {describe(policy.hot)}, cold {describe(policy.cold)}{where}"
        )


@app.command()
def maintain(
    every: Annotated[
        float | None,
        number_option(
            min=0.1,
            max=7 * DAY_S,
            help="Run again every this many seconds, until stopped.",
        ),
    ] = None,
) -> None:
    """Apply the retention policies: tier, verify, catalogue and drop old chunks; expire files.

    Raw chunks past their hot time go to Parquet under ADCLICK_COLD_STORAGE_URL, verified
    by row count and checksum before they are dropped; a crash at any step leaves the
    chunk or a verified file, and the next run completes the job. SIGTERM or Ctrl-C stops
    it between chunks. Exits 1 if a chunk had to be kept because its range is catalogued
    with other rows (a catalogued cold file is never replaced; docs/lifecycle.md).
    """
    configure_logging()
    settings = get_settings().for_process(ProcessKind.MAINTAIN)
    stop = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stop.set())
    while True:
        try:
            report = _maintain_every_database(settings, stop)
        except (psycopg.OperationalError, DependencyUnavailableError) as exc:
            if every is None:
                raise
            # A pass cut short by an outage leaves each chunk whole or in a verified file
            # (docs/lifecycle.md); the next pass goes on from there.
            log.warning("maintenance pass failed, database unavailable: %s", exc)
            if stop.wait(min(every, MAINTAIN_RETRY_S)):
                return
            continue
        if report is None:
            typer.echo("stopped between chunks", err=True)
            return
        typer.echo(
            f"exported {report.exported} chunks ({report.exported_rows:,} rows), dropped "
            f"{report.dropped_chunks} chunks, deleted {report.deleted_files} cold files and "
            f"{report.deleted_lists} old top lists",
            err=True,
        )
        for conflict in report.conflicts:
            typer.echo(f"kept a chunk: {conflict}", err=True)
        for database in report.busy:
            typer.echo(f"left {database} to another adclick maintain working on it", err=True)
        if every is None and report.conflicts:
            raise typer.Exit(1)  # an alert for cron; with --every the log says it each run
        if every is None or stop.wait(every):
            return


def _maintain_every_database(settings: Settings, stop: threading.Event) -> MaintenanceReport | None:
    """One pass over every database (each shard's, and the home's); their reports summed."""
    from adclick.lifecycle.tiering import MaintenanceReport

    total = MaintenanceReport()
    check_databases(settings, reads=False)  # a database maintained twice, or half of one
    for database in settings.every_database():
        if settings.shards:
            typer.echo(f"maintaining {database.describe_database()}", err=True)
        report = _maintain_once(database, stop)
        if report is None:
            return None
        total = total.plus(report)
    return total


def _maintain_once(settings: Settings, stop: threading.Event) -> MaintenanceReport | None:
    """One pass with a progress bar over chunks; None when stopped between chunks."""
    from adclick.lifecycle.tiering import Maintainer

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task("chunks", total=None)

        def on_chunk(chunk: Chunk) -> None:
            if stop.is_set():
                raise KeyboardInterrupt  # between chunks: nothing is half done
            progress.update(
                task, description=f"{chunk.relation} {chunk.range_start:%Y-%m-%d %H:%M}"
            )
            progress.advance(task)

        try:
            return Maintainer(settings, say=progress.console.log).run(on_chunk)
        except KeyboardInterrupt:
            return None


@cold_app.command("query")
def cold_query(
    statement: Annotated[
        str, typer.Argument(help="One DuckDB SELECT; each tiered relation is a view.")
    ],
    output: Annotated[str, typer.Option(help="table or csv")] = "table",
    operator: Annotated[
        bool,
        typer.Option(
            "--operator",
            help="Confirm that you are an operator allowed to read personal data "
            "(raw clicks with user ids and IP addresses). Required.",
        ),
    ] = False,
) -> None:
    """Query the cold files with DuckDB. For operators only: it reads personal data.

    Cold raw clicks are not pseudonymised: they hold user ids and IP addresses, so only
    operators may read them, and --operator confirms that you are one. Analysts query the
    rollups through the API or SQL instead (docs/sql.md).

    Each tiered relation is a view of its catalogued Parquet files (with ADCLICK_SHARDS,
    every shard's). Exactly one SELECT
    statement runs (DESCRIBE, SHOW and SUMMARIZE too); DuckDB reads the catalogued cold files
    and no other file, and writes none: COPY, EXPORT, ATTACH, INSTALL, LOAD, SET and the like
    are refused. A refused or failing query exits with status 2 and a stable code
    (NOT_A_SELECT, FILE_ACCESS_REFUSED, BAD_QUERY).

    Example: adclick cold query --operator "SELECT ad_id, count(*) FROM raw_clicks GROUP BY 1"
    """
    if not operator:
        raise typer.BadParameter(
            "cold query reads personal data (user ids, IP addresses) and is for operators "
            "only; pass --operator to confirm that you are one",
            param_hint="--operator",
        )
    from adclick.lifecycle.cold import ColdQueryError, query_cold_everywhere

    logging.getLogger("duckdb").setLevel(logging.WARNING)
    settings = get_settings().for_process(ProcessKind.MAINTAIN)
    check_databases(settings, reads=False)  # a shard's files counted twice, or missed
    try:
        # With shards, every shard's catalogue: each knows only its own files.
        columns, rows = query_cold_everywhere(settings, statement)
    except ColdQueryError as exc:
        typer.echo(f"adclick: cold query refused: {exc}", err=True)
        raise typer.Exit(2) from None
    if output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
        return
    # Text, not markup: values are data (rich strips their control characters too).
    table = Table(*(Column(header=Text(name)) for name in columns))
    for row in rows:
        table.add_row(*(Text(str(v)) for v in row))
    Console().print(table)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO-8601 time") from None
    return moment  # UTC if it has no offset, and checked: lifecycle.recompute.utc_range


@app.command()
def recalculate(
    start: Annotated[
        str, typer.Option("--from", help="First minute, ISO 8601 (UTC if no offset).")
    ],
    end: Annotated[str, typer.Option("--to", help="End minute (exclusive).")],
    rollup: Annotated[
        str | None, typer.Option(help="Only this rollup (clicks_1m, clicks_1h, clicks_1m_by_...).")
    ] = None,
) -> None:
    """Rebuild rollups over [--from, --to) from raw clicks, hot and cold (e.g. after a fix).

    A day at a time per rollup, each swapped in atomically: queries see the old counts
    until the new ones replace them. On correct rollups it changes nothing.
    """
    from adclick.lifecycle.recalculate import RecalculationReport
    from adclick.lifecycle.recalculate import recalculate as run_recalculation

    configure_logging()
    settings = get_settings().for_process(ProcessKind.MAINTAIN)
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True)) as progress:  # fmt: skip
        task = progress.add_task("recalculating")

        def on_step(target: Rollup, day: datetime) -> None:
            progress.update(task, description=f"{target.table} {day:%Y-%m-%d %H:%M}")

        report = RecalculationReport()
        check_databases(settings, reads=False)
        for shard in settings.shard_settings():  # each holds the clicks of its partitions
            progress.console.log(f"recalculating on {shard.describe_database()}")
            done = run_recalculation(shard, _moment(start), _moment(end), rollup, on_step)
            report.rows_changed += done.rows_changed
            report.rows_written += done.rows_written
    typer.echo(
        f"recalculated: {report.rows_changed:,} rollup rows differed from raw clicks and "
        f"were replaced ({report.rows_written:,} rows written)",
        err=True,
    )


@app.command()
def reconcile(
    start: Annotated[
        str, typer.Option("--from", help="First minute, ISO 8601 (UTC if no offset).")
    ],
    end: Annotated[str, typer.Option("--to", help="End minute (exclusive).")],
    show: Annotated[int, typer.Option(min=0, help="Discrepancies to print at most.")] = 100,
) -> None:
    """Compare every rollup row over [--from, --to) with counts recomputed from raw clicks.

    Prints each discrepancy (rollup, bucket, ad, dimensions, expected, stored) and exits 1
    if there is any; the result is recorded for the API's /metrics
    (adclick_reconcile_discrepancies). Run it nightly for the day before: docs/lifecycle.md.
    """
    from adclick.lifecycle.reconcile import reconcile as run_reconciliation

    configure_logging()
    settings = get_settings().for_process(ProcessKind.MAINTAIN)
    check_databases(settings, reads=False)
    reports = [
        run_reconciliation(shard, _moment(start), _moment(end))  # recorded in each shard
        for shard in settings.shard_settings()
    ]
    if len(reports) > 1:
        for number, shard_report in enumerate(reports):
            typer.echo(
                f"shard {number}: checked {shard_report.rows_checked:,} rollup rows: "
                f"{len(shard_report.discrepancies):,} discrepancies",
                err=True,
            )
    discrepancies = [d for shard_report in reports for d in shard_report.discrepancies]
    rows_checked = sum(shard_report.rows_checked for shard_report in reports)
    writer = csv.writer(sys.stdout)
    if discrepancies:
        writer.writerow(["rollup", "bucket", "ad_id", "dimensions", "expected", "stored"])
    for d in discrepancies[:show]:
        writer.writerow(
            [d.rollup, d.bucket.isoformat(), d.ad_id, "|".join(d.dimensions), d.expected, d.stored]
        )
    typer.echo(
        f"checked {rows_checked:,} rollup rows: {len(discrepancies):,} discrepancies", err=True
    )
    if discrepancies:
        raise typer.Exit(1)
