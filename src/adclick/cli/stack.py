"""Commands of the local stack: up, down, status, env, migrate."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from adclick.cli.app import app
from adclick.db.connect import connect
from adclick.db.identity import check_databases
from adclick.db.migrate import upgrade
from adclick.db.passfile import read_passfile
from adclick.db.roles import grant_logins
from adclick.kafka import create_topics
from adclick.redact import mask_secrets
from adclick.settings import ProcessKind, get_settings
from adclick.stack import stack_down, stack_status, stack_up
from adclick.stack.lifecycle import with_local_roles, with_local_shards
from adclick.stack.replica import (
    local_read_url,
    replica_cluster,
    replica_down,
    replica_remove,
    replica_up,
)


def _say(message: str) -> None:
    typer.echo(f"adclick: {message}", err=True)


@app.command()
def up(
    replica: Annotated[
        bool,
        typer.Option(
            help="Also run a read replica: a streaming standby of the database on its own "
            "port (ADCLICK_DATABASE_READ_URL's, or the primary's + 1).",
        ),
    ] = False,
    shards: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Run N partition-aligned shards: the primary's database and N - 1 clusters "
            "of their own (ports: the primary's + 2, + 3, ...), each owning an even run of "
            "the clicks topic's partitions. Default: as many as the last `up` made.",
        ),
    ] = None,
) -> None:
    """Install what is missing and start the local stack (TimescaleDB + Tansu broker).

    Everything lives under the state directory (ADCLICK_STATE_DIR, default ./.adclick)
    on private ports. Applies the migrations (on every shard) and creates the topics.
    Running it again when all is up changes nothing. A replica or shards made once are
    started again by every `up`.
    """
    settings = with_local_shards(get_settings(), shards)
    stack_up(settings, _say)
    if replica or replica_cluster(settings).initialised():
        replica_up(settings, _say)
    _say("the local stack is up; `eval $(adclick env)` points a shell at it")


@app.command()
def down(
    remove_replica: Annotated[
        bool, typer.Option(help="Also delete the read replica's copy of the database.")
    ] = False,
) -> None:
    """Stop the local stack. The database stays on disk; the broker's topics are dropped."""
    settings = with_local_shards(get_settings())
    if remove_replica:
        replica_remove(settings, _say)
    else:
        replica_down(settings, _say)
    stack_down(settings, _say)


@app.command()
def status() -> None:
    """Show what of the local stack runs; exit 1 unless all of it is up and current."""
    state = stack_status(get_settings())
    typer.echo(f"timescaledb installed: {'yes' if state.timescaledb_installed else 'no'}")
    typer.echo(f"database:              {'running' if state.database_running else 'stopped'}")
    broker = f"running (pid {state.broker_pid})" if state.broker_pid else "stopped"
    typer.echo(f"broker:                {broker}")
    typer.echo(f"schema revision:       {state.migration or '-'} (head {state.head})")
    for index, (port, revision) in enumerate(state.shards.items(), start=1):
        shard = f"running, schema {revision}" if revision else "stopped"
        typer.echo(f"shard {index}:               {shard} (127.0.0.1:{port})")
    replica = replica_cluster(get_settings())
    if replica.initialised():
        running = "running" if replica.running() else "stopped"
        typer.echo(f"read replica:          {running} (127.0.0.1:{replica.port})")
    raise typer.Exit(0 if state.healthy else 1)


@app.command()
def env() -> None:
    """Print ``export`` lines that point a shell at the local stack.

    The database URLs (the owner's, and one per process kind with its own role), the
    Kafka servers, and PGPASSFILE: the stack's password file, so that psql finds the
    passwords too. No password is printed.
    """
    settings = with_local_roles(with_local_shards(get_settings()))
    variables = {"ADCLICK_DATABASE_URL": settings.database_url}
    if settings.shards:
        variables["ADCLICK_SHARDS"] = json.dumps(
            [shard.model_dump(exclude_none=True) for shard in settings.shards]
        )
    for kind in ProcessKind:
        url = getattr(settings, f"{kind.value}_database_url")
        variables[f"ADCLICK_{kind.value.upper()}_DATABASE_URL"] = url
    if replica_cluster(settings).initialised():
        variables["ADCLICK_DATABASE_READ_URL"] = local_read_url(settings)
    variables["ADCLICK_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    if settings.passfile is not None:
        variables["PGPASSFILE"] = str(settings.passfile)
    for name, value in variables.items():
        typer.echo(f"export {name}={shlex.quote(mask_secrets(value))}")


@app.command()
def migrate(
    logins: Annotated[
        list[Path] | None,
        typer.Option(
            help="A libpq password file (host:port:database:user:password lines), e.g. a "
            "Docker secret: each process role it names (adclick_ingest, adclick_closer, "
            "adclick_api, adclick_maintain) becomes a login with that password. Repeatable."
        ),
    ] = None,
) -> None:
    """Apply pending database migrations and create the configured filtered rollups, on
    every database (each shard's, with ADCLICK_SHARDS).

    Runs as the schema's owner (ADCLICK_DATABASE_URL), which needs CREATEROLE the first
    time: migration 0007 creates the process roles.
    """
    passwords: dict[str, str] = {}
    for path in logins or []:
        for user, password in read_passfile(path).items():
            passwords.setdefault(user, password)  # the first file naming a role wins
    settings = get_settings()
    check_databases(settings, reads=False)
    for database in settings.every_database():  # each shard's, and the home's
        upgrade(database)
        _say(f"the database schema is current on {database.describe_database()}")
        if passwords:
            with connect(database) as conn:
                granted = grant_logins(conn, passwords)
            _say(f"logins: {', '.join(granted) or 'none of the process roles'}")


@app.command()
def topics() -> None:
    """Create adclick's Kafka topics when missing (clicks, dead letters, top lists).

    `adclick up` does this for the local stack; against a real cluster, run it once (or
    let the deployment's one-shot job do it). Partitions: ADCLICK_TOPIC_PARTITIONS;
    replication: ADCLICK_TOPIC_REPLICATION_FACTOR.
    """
    settings = get_settings()
    created = create_topics(settings)
    _say(f"created topics: {', '.join(created)}" if created else "every topic exists already")
