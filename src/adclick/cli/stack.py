"""Commands of the local stack: up, down, status, env, migrate."""

from __future__ import annotations

import shlex

import typer

from adclick.cli.app import app
from adclick.db.migrate import upgrade
from adclick.kafka import create_topics
from adclick.settings import get_settings
from adclick.stack import stack_down, stack_status, stack_up


def _say(message: str) -> None:
    typer.echo(f"adclick: {message}", err=True)


@app.command()
def up() -> None:
    """Install what is missing and start the local stack (TimescaleDB + Tansu broker).

    Everything lives under the state directory (ADCLICK_STATE_DIR, default ./.adclick)
    on private ports. Applies the migrations and creates the topics. Running it again
    when all is up changes nothing.
    """
    stack_up(get_settings(), _say)
    _say("the local stack is up; `eval $(adclick env)` points a shell at it")


@app.command()
def down() -> None:
    """Stop the local stack. The database stays on disk; the broker's topics are dropped."""
    stack_down(get_settings(), _say)


@app.command()
def status() -> None:
    """Show what of the local stack runs; exit 1 unless all of it is up and current."""
    state = stack_status(get_settings())
    typer.echo(f"timescaledb installed: {'yes' if state.timescaledb_installed else 'no'}")
    typer.echo(f"database:              {'running' if state.database_running else 'stopped'}")
    broker = f"running (pid {state.broker_pid})" if state.broker_pid else "stopped"
    typer.echo(f"broker:                {broker}")
    typer.echo(f"schema revision:       {state.migration or '-'} (head {state.head})")
    raise typer.Exit(0 if state.healthy else 1)


@app.command()
def env() -> None:
    """Print ``export ADCLICK_...=`` lines for the database URL and Kafka servers."""
    settings = get_settings()
    typer.echo(f"export ADCLICK_DATABASE_URL={shlex.quote(settings.database_url)}")
    typer.echo(
        f"export ADCLICK_KAFKA_BOOTSTRAP_SERVERS={shlex.quote(settings.kafka_bootstrap_servers)}"
    )


@app.command()
def migrate() -> None:
    """Apply pending database migrations and create the configured filtered rollups."""
    upgrade(get_settings())
    _say("the database schema is current")


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
