"""``adclick demo``: the whole service on the local stack, with a live view of the counts.

Starts the stack, an ingest worker, the minute closer and the GraphQL API (with GraphiQL
and anonymous reads), replays the real TalkingData sample (shifted so it ends now) and
keeps synthetic traffic flowing with ``adclick loadgen --rate``. The view reads the
rollups the way any client does. Ctrl-C stops the traffic, the closer, the worker and the
API gracefully and leaves the stack up for exploring (``adclick down`` stops it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from adclick.db.connect import Connection, connect
from adclick.demo.talkingdata import read_sample, shift_to_now, to_event
from adclick.kafka import make_producer
from adclick.resources import load_sql
from adclick.settings import Settings
from adclick.stack import stack_up
from adclick.stack.lifecycle import with_local_roles

VIEW_MINUTES = 5
Say = Callable[[str], None]


def replay_sample(settings: Settings, path: Path, say: Say) -> int:
    """Send the TalkingData sample's clicks, shifted to end at the current minute."""
    rows = read_sample(path)
    shift = shift_to_now(rows, int(time.time() * 1000))
    producer = make_producer(settings)
    for row in rows:
        event = to_event(row, shift)
        producer.produce(settings.clicks_topic, value=event.to_json(), key=event.ad_id.encode())
        producer.poll(0)
    producer.flush(60)
    say(f"replayed {len(rows):,} real clicks from {path.name}")
    return len(rows)


def _adclick(*args: str, settings: Settings) -> subprocess.Popen[bytes]:
    # Their logs go to a file, so they do not tear the live view.
    log_file = settings.state_dir / "logs" / f"demo-{args[0]}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # One Prometheus multiprocess directory for the worker and the API: the API's
    # /metrics then shows the ingest counters too.
    metrics_dir = settings.state_dir.resolve() / "metrics" / "demo"
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "adclick", *args],
            env={
                **os.environ,
                **settings.as_environment(),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            },
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )


def _view(conn: Connection) -> Table:
    totals = conn.execute(load_sql("demo/totals")).fetchone() or (0, 0)
    table = Table(
        title=f"top ads, last {VIEW_MINUTES} minutes  ·  {totals[0]:,} clicks counted  ·  "
        f"{totals[1]:,} ads",
    )
    for column in ("rank", "ad", "clicks", "top countries"):
        table.add_column(column, justify="right" if column in ("rank", "clicks") else "left")
    rows = conn.execute(load_sql("demo/top_ads"), {"minutes": VIEW_MINUTES}).fetchall()
    for rank, (ad_id, clicks, countries) in enumerate(rows, start=1):
        table.add_row(str(rank), str(ad_id), f"{clicks:,}", str(countries))
    conn.commit()
    return table


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(settings: Settings, sample: Path | None, rate: float, say: Say) -> None:
    """Run the demo until Ctrl-C or SIGTERM; either stops the processes it started."""
    # SIGTERM (kill, a supervisor, `timeout`) ends the demo as Ctrl-C does, instead of
    # leaving its worker, API, closer and traffic running without it.
    signal.signal(signal.SIGTERM, _interrupt)
    stack_up(settings, say)
    # Each process as its own database role, as a deployment runs them.
    settings = with_local_roles(settings)
    metrics_dir = settings.state_dir.resolve() / "metrics" / "demo"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    worker = _adclick("ingest", settings=settings)
    # The demo's API lets anyone read and serves GraphiQL; a real deployment uses tokens.
    api_settings = settings.model_copy(update={"api_allow_anonymous": True, "api_graphiql": True})
    api = _adclick("api", settings=api_settings)
    closer = _adclick("close", settings=settings)
    base_url = f"http://{settings.api_host}:{settings.api_port}"
    say(f"the ad manager: {base_url}/ (anonymous reads on; admin pages need an admin token)")
    say(
        f"GraphQL API with GraphiQL: {base_url}/graphql "
        "(examples in graphql/operations/, e.g. the TopAdsLive "
        "subscription for a new top list every minute)"
    )
    traffic: subprocess.Popen[bytes] | None = None
    try:
        if sample is not None:
            replay_sample(settings, sample, say)
        if rate > 0:
            say(f"sending synthetic clicks at {rate:,.0f}/s (adclick loadgen)")
            traffic = _adclick(
                "loadgen", "--rate", str(rate), "--duration", "86400", "--ads", "50000",
                "--duplicate-fraction", "0.02", "--late-fraction", "0.02",
                "--invalid-fraction", "0.005", "--quiet",
                settings=settings,
            )  # fmt: skip
        say(f"logs of the worker and the traffic: {settings.state_dir / 'logs'}")
        say("live view below; Ctrl-C stops the traffic, worker and API (the stack stays up)")
        with connect(settings) as conn, Live(_view(conn), console=Console(), screen=False) as live:
            while worker.poll() is None:
                time.sleep(2)
                live.update(_view(conn))
    except KeyboardInterrupt:
        pass
    finally:
        for process in (traffic, closer, worker, api):
            if process is not None and process.poll() is None:
                process.terminate()  # both stop gracefully on SIGTERM
                process.wait(timeout=60)
        say("stopped; `adclick down` stops the stack")
