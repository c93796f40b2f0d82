"""``python -m bench soak``: a production day, compressed, with faults.

Every process as in production runs at once on the local stack, in a database and topics
of its own: ``adclick ingest --workers 2``, ``adclick close``, two ``adclick api``,
``adclick maintain --every``; traffic is generated in this process at a steady rate with
duplicates, late and invalid events, with bursts to the peak rate; event time runs
``speedup`` times faster than the wall clock, so hours turn over, lists are revised and raw
chunks pass their (soak) hot time within the run (SoakPlan.hot_time). Readers: a few clients asking
the frontend's operations, and one subscription client recording every list it receives.

Faults, each at a set fraction of the run and logged with its time: SIGKILL of an ingest
worker, of the closer, of one API and of ``maintain`` mid-export (each restarted as an
orchestrator would; the ingest supervisor restarts its worker itself); PostgreSQL
stopped with ``pg_ctl stop -m immediate`` and started 20 s later; the broker frozen
(SIGSTOP) for 30 s; ``adclick recalculate`` of a past hour while ingest runs.

At the end (traffic stopped, ingest drained, the closer caught up) it reports: every
rollup against the truth of everything sent, ``reconcile`` over the run, the
dead-letter topic against the invalid events sent, the subscriber's lists against the
published ones, and every process exit that was not planned. It measures and reports;
it asserts nothing (tests/integration/test_soak.py runs a short form that does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adclick.api.auth import new_token
from adclick.db.connect import connect
from adclick.db.migrate import upgrade
from adclick.kafka import create_topics, make_producer
from adclick.lifecycle.policies import set_policy
from adclick.loadgen.generator import LoadSpec, generate
from adclick.loadgen.send import SendReport, send_blocks
from adclick.loadgen.truth import TruthAccumulator
from adclick.settings import Role, Settings
from adclick.stack.broker import TansuBroker
from adclick.stack.lifecycle import local_targets
from adclick.stack.timescaledb import TimescaleCluster
from adclick.time_units import HOUR_MS
from bench.environment import (
    bench_database_settings,
    delete_topics,
    free_port,
    fresh_topic_names,
)
from bench.soak_checks import (
    SharedTruth,
    dead_letters,
    reconciled,
    rollups_equal_truth,
    subscription_in_order,
)
from bench.soak_processes import Processes
from bench.soak_queries import QueryLoad, Subscriber
from bench.soak_timeline import Sampler, draw, wait_interval

SOAK_DATABASE = "adclick_bench_soak"
SAMPLE_S = 10.0
DATABASE_RECOVERY_S = 600
FAULTS = (  # (fraction of the run, kind)
    (0.10, "kill_ingest_worker"),
    (0.20, "kill_closer"),
    (0.30, "kill_api"),
    (0.42, "database_restart"),
    (0.55, "broker_freeze"),
    (0.65, "recalculate"),
)
# Armed from the start, beside the others: maintain exports a raw chunk only when one
# passes its hot time, which SoakPlan.event_start_ms makes happen about half-way through
# the run (a fixed slot missed it in a 60-minute run).
WATCHED_FAULTS = ("kill_maintain_mid_export",)
DAY_MS = 24 * HOUR_MS  # raw_clicks' chunk interval (migration 0001)


@dataclass(frozen=True)
class SoakPlan:
    minutes: float = 60.0
    rate: float = 20_000.0
    speedup: float = 24.0
    burst_rate: float = 50_000.0
    burst_every_s: float = 900.0
    burst_s: float = 60.0
    ads: int = 100_000
    query_clients: int = 4
    query_rate: float = 20.0
    faults: bool = True
    database_down_s: float = 20.0
    broker_frozen_s: float = 30.0

    @property
    def seconds(self) -> float:
        return self.minutes * 60

    @property
    def hot_time(self) -> timedelta:
        """How long raw clicks stay hot (and deduplicable) in event time.

        Clicks sent later than that behind the newest are refused as already tiered
        (dead letters, docs/lifecycle.md), as in production, where it is 7 days. At a
        high speed-up a sender that stalls is soon hours of event time behind: a produce
        request in flight when the broker froze can wait out librdkafka's request
        timeout (30 s by default), 6 hours at 720x. The hot time covers a minute of
        stalled sending (12 hours at 720x, 6 at 24x)."""
        return max(timedelta(hours=6), timedelta(seconds=60 * self.speedup))

    def event_start_ms(self, now_ms: int) -> int:
        """Where the run's event time starts, given the wall clock at its start.

        Event time ends a few minutes before the wall clock (nothing from the future).
        maintain exports raw_clicks by UTC day chunk once the day has passed its hot time,
        so whether a run sees an export depended on the time of day it started (the short
        form in CI had none between 06:00 and 12:00 UTC): the start goes back, by less than
        a day, until a midnight lies where the day before it passes its hot time half-way
        through the run. When the run is too short for that, it starts as late as it can.
        """
        span_ms = int(self.seconds * self.speedup * 1000)
        latest_ms = now_ms - span_ms - 300_000
        to_export_ms = span_ms // 2 - int(self.hot_time.total_seconds() * 1000)
        if to_export_ms < 0:
            return latest_ms
        midnight_ms = (latest_ms + to_export_ms) // DAY_MS * DAY_MS
        return midnight_ms - to_export_ms


@dataclass
class Traffic:
    """The senders: one steady, and one per burst; all add to one truth."""

    settings: Settings
    plan: SoakPlan
    event_start_ms: int
    truth: TruthAccumulator | None = None  # set from the steady sender's spec
    reports: list[SendReport] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spec(self, seed: int, rate: float, seconds: float, at_s: float) -> LoadSpec:
        return LoadSpec(
            events=int(rate * seconds),
            start_ms=self.event_start_ms + int(at_s * self.plan.speedup * 1000),
            seed=seed,
            ads=self.plan.ads,
            event_rate=rate / self.plan.speedup,  # sends per second of event time
            duplicate_fraction=0.01,
            late_fraction=0.01,
            max_lateness_s=60.0,
            invalid_fraction=0.001,
            # A duplicate re-sends a click of this or the previous block: blocks of at most
            # half an hour of event time keep every duplicate well within the dedup
            # horizon at any speed-up, so none is dead-lettered as beyond it.
            block_size=max(1_000, min(50_000, int(1_800 * rate / self.plan.speedup))),
        )

    def send(self, spec: LoadSpec, rate: float) -> None:
        assert self.truth is not None
        shared = SharedTruth(self.truth, self._lock)

        def run() -> None:
            # Idempotent: a produce request that times out and is retried (the broker is
            # frozen or slow) must not put a message in the topic twice; the dead-letter
            # check counts invalid messages exactly.
            producer = make_producer(self.settings, **{"enable.idempotence": True})
            self.reports.append(send_blocks(generate(spec), producer, self.settings.clicks_topic,
                                            rate=rate, truth=shared))  # fmt: skip

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    @property
    def invalid(self) -> int:
        return sum(report.invalid for report in self.reports)


def run_soak(
    base: Settings, plan: SoakPlan, out_dir: Path, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the soak on the running local stack of ``base``; writes timeline.json,
    timeline.png and the process logs to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings, token = _soak_settings(base, plan, out_dir)
    targets = local_targets(base)
    database = TimescaleCluster(base.state_dir, targets.db_port)
    broker = TansuBroker(base.state_dir, targets.kafka_port)
    processes = Processes(settings, out_dir)
    topics = [settings.clicks_topic, settings.dlq_topic, settings.top_ads_topic]
    try:
        with processes:  # an interrupted soak leaves no process behind
            return _soak(settings, token, plan, out_dir, processes, database, broker, say)
    finally:
        # The local broker keeps every message in memory until its topic is deleted:
        # a soak's topics go however it ends.
        delete_topics(settings, topics)


def _soak(
    settings: Settings,
    token: str,
    plan: SoakPlan,
    out_dir: Path,
    processes: Processes,
    database: TimescaleCluster,
    broker: TansuBroker,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The run itself: processes, traffic, queries and faults, then the checks."""
    ingest_port, close_port = free_port(), free_port()
    api_ports = [free_port(), free_port()]
    processes.start("ingest", "ingest", "--workers", "2", "--metrics-port", str(ingest_port))
    processes.start("close", "close", "--metrics-port", str(close_port))
    for i, port in enumerate(api_ports, start=1):
        processes.start(f"api-{i}", "api", "--port", str(port))
    processes.start("maintain", "maintain", "--every", "20")
    urls = [f"http://127.0.0.1:{port}" for port in api_ports]
    _wait_ready(urls, say)
    processes.started = time.monotonic()  # the run's clock: faults, samples, queries

    event_start_ms = plan.event_start_ms(int(time.time() * 1000))
    traffic = Traffic(settings, plan, event_start_ms)
    steady = traffic.spec(1, plan.rate, plan.seconds, 0.0)
    truth = traffic.truth = TruthAccumulator.for_spec(steady)
    traffic.send(steady, plan.rate)
    popular = [n for n in (1, 2, 3, 10, 100, 1000, 5000) if n <= plan.ads]
    ads = [f"ad{str(n).zfill(truth.ad_width)}" for n in popular]
    queries = QueryLoad(
        urls, token, ads, plan.query_clients, plan.query_rate, started=processes.started
    )
    queries.start()
    subscriber = Subscriber(urls[1], token, window_minutes=1)  # api-2 is never killed
    subscriber.start()
    sampler = Sampler(
        settings, processes, queries, ingest_port, close_port, plan.speedup,
        others=lambda: {"broker": broker.pid(), "postgres": database.postmaster_pid()},
    )  # fmt: skip
    faults: list[dict[str, Any]] = []
    arguments = (faults, processes, database, broker, settings, plan, event_start_ms, say)
    schedules = [sorted(FAULTS), [(0.0, kind) for kind in WATCHED_FAULTS]] if plan.faults else []
    injectors = [
        threading.Thread(target=_inject_all, args=(schedule, *arguments), daemon=True)
        for schedule in schedules
    ]
    for injector in injectors:
        injector.start()
    bursts = _range(plan.burst_every_s / 2, plan.seconds, plan.burst_every_s)
    say(f"soak: {plan.minutes:g} min, {plan.rate:,.0f} events/s, {plan.speedup:g}x event time")
    while processes.now() < plan.seconds:
        wait_interval(processes.started, SAMPLE_S)
        now = processes.now()
        processes.poll()
        for at in [b for b in bursts if b <= now]:
            bursts.remove(at)
            extra = plan.burst_rate - plan.rate
            if extra > 0:
                # Event time from now, in step with the steady sender.
                traffic.send(traffic.spec(100 + int(at), extra, plan.burst_s, now), extra)
                faults.append({"at_s": round(now, 1), "end_s": round(now + plan.burst_s, 1),
                               "kind": "burst"})  # fmt: skip
        try:
            row = sampler.sample()
            say(f"{now:7.0f} s  {row['events_per_s']} events/s, lag {row['consumer_lag']}, "
                f"freshness p99 {row['freshness_p99_s']} s, "
                f"closer lag {row.get('closer_lag_wall_s')} s")  # fmt: skip
        except Exception as exc:  # the database may be down: no row this time
            say(f"{now:7.0f} s  sample failed: {exc}")
    for injector in injectors:
        injector.join()

    say("traffic sent; draining")
    traffic.join()
    drained = _drain(settings, processes, sampler, sum(r.sent for r in traffic.reports), say)
    queries.stop()
    subscriber.stop()
    processes.poll()
    codes = processes.stop_all()
    end = datetime.fromtimestamp((event_start_ms + plan.seconds * plan.speedup * 1000) / 1000
                                 + 600, tz=UTC)  # fmt: skip
    start = datetime.fromtimestamp(event_start_ms / 1000 - 600, tz=UTC)
    letters, letter_repeats = dead_letters(settings, traffic.invalid)
    checks = {
        "drained": drained,
        "rollups": rollups_equal_truth(settings, truth),
        "reconcile": reconciled(settings, _minute(start), _minute(end)),
        "dead_letters": dict(letters),
        "dead_letter_repeats": letter_repeats,
        "invalid_sent": traffic.invalid,
        "subscription": subscription_in_order(
            [(_epoch(end_), rev) for end_, rev in subscriber.received],
            _published(settings, window_minutes=1),
        ),
        "subscription_errors": subscriber.errors,
        "unplanned_exits": [asdict(e) for e in processes.exits if not e.planned],
        "exit_codes_at_stop": codes,
    }
    timeline = {"plan": asdict(plan), "faults": faults, "rows": sampler.rows}
    (out_dir / "timeline.json").write_text(json.dumps(timeline, indent=1))
    draw(sampler.rows, faults, out_dir / "timeline.png")
    return {"plan": asdict(plan), "faults": faults, "checks": checks,
            "recovery_s": recovery(sampler.rows, faults),
            "sent": [r.summary() for r in traffic.reports]}  # fmt: skip


def _soak_settings(base: Settings, plan: SoakPlan, out_dir: Path) -> tuple[Settings, str]:
    settings = bench_database_settings(base, SOAK_DATABASE, recreate=True)
    upgrade(settings)
    token, entry = new_token("soak-reader", Role.READER)
    settings = settings.model_copy(
        update={
            **fresh_topic_names("soak"),
            "api_tokens": [entry],
            "cold_storage_url": str((out_dir / "cold").resolve()),
            # Raw clicks stay hot a few hours of event time (below) so that chunks are
            # tiered within the run, and may be deduplicated over no more than that.
            "dedup_horizon": plan.hot_time,
        }
    )
    create_topics(settings)
    with connect(settings) as conn:
        set_policy(conn, settings, "raw_clicks", plan.hot_time, timedelta(days=30), "soak")
    return settings, token


def _inject_all(
    schedule: list[tuple[float, str]],
    faults: list[dict[str, Any]],
    processes: Processes,
    database: TimescaleCluster,
    broker: TansuBroker,
    settings: Settings,
    plan: SoakPlan,
    event_start_ms: int,
    say: Callable[[str], None],
) -> None:
    """Each fault at its time, one after another, beside the sampling loop."""
    for fraction, kind in schedule:
        while processes.now() < fraction * plan.seconds:
            time.sleep(0.5)
        at = processes.now()
        try:
            record = _inject(kind, processes, database, broker, settings, plan, event_start_ms)
        except Exception as exc:  # reported, and the next faults still run
            record = {"error": repr(exc)[:500]}
        at = record.pop("at_s", at)  # a watched fault happens when what it waits for does
        faults.append({"at_s": round(at, 1), "end_s": round(processes.now(), 1), "kind": kind,
                       **record})  # fmt: skip
        say(f"{at:7.0f} s  fault {kind}: {record}")


def recovery(
    rows: list[dict[str, Any]], faults: list[dict[str, Any]]
) -> dict[str, dict[str, float | None]]:
    """Per fault, seconds from its end until freshness p99 <= 2 s and closer lag < 5 s
    (``to_targets_s``), and until both are back at their levels of the minute before it
    (``to_before_s``: what recovery means on a machine that misses the targets anyway).
    None: not within the run."""
    out: dict[str, dict[str, float | None]] = {}
    for fault in faults:
        before = [r for r in rows if fault["at_s"] - 60 <= r["t_s"] < fault["at_s"]]
        fresh_before = _median([r.get("freshness_p99_s") for r in before])
        closer_before = _median([r.get("closer_lag_wall_s") for r in before])
        out[f"{fault['kind']}@{fault['at_s']:.0f}s"] = {
            "to_targets_s": _back(rows, fault["end_s"], 2.0, 5.0),
            "to_before_s": _back(
                rows, fault["end_s"], max(2.0, fresh_before or 0.0), max(5.0, closer_before or 0.0)
            ),
        }
    return out


def _back(
    rows: list[dict[str, Any]], since_s: float, fresh_s: float, closer_s: float
) -> float | None:
    for row in rows:
        fresh, closer = row.get("freshness_p99_s"), row.get("closer_lag_wall_s")
        if fresh is None or closer is None or row["t_s"] < since_s:
            continue
        if float(fresh) <= fresh_s and float(closer) < closer_s:
            return round(float(row["t_s"]) - since_s, 1)
    return None


def _median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return known[len(known) // 2] if known else None


def _inject(
    kind: str,
    processes: Processes,
    database: TimescaleCluster,
    broker: TansuBroker,
    settings: Settings,
    plan: SoakPlan,
    event_start_ms: int,
) -> dict[str, Any]:
    """One fault; returns what was done (and, for restarts, how long it took)."""
    if kind == "kill_ingest_worker":
        return {"pid": processes.kill_child("ingest")}
    if kind in ("kill_closer", "kill_api"):
        name = "close" if kind == "kill_closer" else "api-1"
        processes.kill(name)
        time.sleep(2.0)
        processes.restart(name)
        return {"process": name}
    if kind == "database_restart":
        database.stop(immediate=True)
        time.sleep(plan.database_down_s)
        restarted = time.monotonic()
        # Crash recovery replays the WAL since the last checkpoint: over a minute when busy.
        database.start(timeout_s=DATABASE_RECOVERY_S)
        return {"down_s": plan.database_down_s,
                "accepting_after_s": round(time.monotonic() - restarted, 1)}  # fmt: skip
    if kind == "broker_freeze":
        pid = broker.pid()
        if pid is None:
            return {"error": "no broker"}
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(plan.broker_frozen_s)
        finally:
            os.kill(pid, signal.SIGCONT)
        return {"frozen_s": plan.broker_frozen_s}
    if kind == "recalculate":
        # An hour well behind the stream: two hours of event time back from now.
        now_event_ms = event_start_ms + processes.now() * plan.speedup * 1000
        hour = datetime.fromtimestamp(now_event_ms / 1000, tz=UTC).replace(
            minute=0, second=0, microsecond=0
        ) - timedelta(hours=2)
        result = subprocess.run(
            [sys.executable, "-m", "adclick", "recalculate", "--from", hour.isoformat(),
             "--to", (hour + timedelta(hours=1)).isoformat()],
            env={**os.environ, **settings.as_environment()},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return {"hour": hour.isoformat(), "exit_code": result.returncode,
                "output": result.stderr[-300:]}  # fmt: skip
    if kind == "kill_maintain_mid_export":
        log = processes.log_dir / "maintain.log"
        # At the first export that begins within the run (raw chunks pass their hot time
        # as event time goes on).
        seen = log.read_text(errors="replace").count("exporting") if log.exists() else 0
        while processes.now() < plan.seconds:
            if log.exists() and log.read_text(errors="replace").count("exporting") > seen:
                break
            time.sleep(0.2)
        else:
            return {"error": "no export began within the run; not killed"}
        at = processes.now()
        processes.kill("maintain")
        time.sleep(2.0)
        processes.restart("maintain")
        return {"process": "maintain", "at_s": at}
    raise ValueError(kind)


def _drain(
    settings: Settings,
    processes: Processes,
    sampler: Sampler,
    sent: int,
    say: Callable[[str], None],
) -> bool:
    """Wait (10 min at most) until ingest has committed every message sent and the closer
    has stayed within two minutes of event time of the watermark for three samples."""
    deadline = time.monotonic() + 600
    settled = 0
    while time.monotonic() < deadline:
        wait_interval(processes.started, SAMPLE_S)
        try:
            row = sampler.sample()
            committed = _committed(settings)
        except Exception as exc:
            say(f"sample failed: {exc}")
            continue
        closer_lag = row.get("closer_lag_event_s")
        caught_up = committed >= sent and closer_lag is not None and closer_lag <= 120
        settled = settled + 1 if caught_up else 0
        say(f"draining: {committed:,} of {sent:,} committed, closer lag {closer_lag} event s")
        if settled >= 3:
            return True
    return False


def _committed(settings: Settings) -> int:
    """Messages of the clicks topic the consumer group has committed (offsets stored with
    the batches they follow: docs/architecture.md)."""
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets"
            " WHERE consumer_group = %s AND topic = %s",
            [settings.consumer_group, settings.clicks_topic],
        ).fetchone()
    return int(row[0]) if row else 0


def _published(settings: Settings, window_minutes: int) -> list[tuple[int, int]]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM window_end)::bigint, revision FROM top_ad_lists"
            " WHERE window_minutes = %s AND filter_key = '' AND published_offset IS NOT NULL"
            " ORDER BY published_offset",
            [window_minutes],
        ).fetchall()
    return [(int(end), int(revision)) for end, revision in rows]


def _wait_ready(urls: list[str], say: Callable[[str], None]) -> None:
    import httpx

    deadline = time.monotonic() + 120
    for url in urls:
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{url} not ready within 120 s")
    say("APIs ready")


def _range(start: float, stop: float, step: float) -> list[float]:
    out, t = [], start
    while t < stop:
        out.append(t)
        t += step
    return out


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())
