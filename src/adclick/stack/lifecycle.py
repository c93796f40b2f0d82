"""``adclick up / down / status``: the local stack as one unit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from adclick.db.connect import connect
from adclick.db.migrate import current_revision, head_revision, upgrade
from adclick.errors import ConfigurationError
from adclick.kafka.clients import create_topics
from adclick.settings import PROCESS_ROLES, Settings
from adclick.stack.broker import TansuBroker
from adclick.stack.process import port_open
from adclick.stack.secrets import ensure_passwords
from adclick.stack.timescaledb import (
    SUPERUSER,
    Say,
    TimescaleCluster,
    install_timescaledb,
    timescaledb_installed,
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# The names the local stack answers on (it listens on the loopback only).
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@dataclass(frozen=True)
class LocalTargets:
    """Where the settings say the local stack's services listen."""

    db_port: int
    db_name: str
    db_user: str
    kafka_port: int


def local_targets(settings: Settings) -> LocalTargets:
    """Check that the settings point at this machine, and return the ports and names."""
    db = urlsplit(settings.database_url)
    kafka_host, _, kafka_port = settings.kafka_bootstrap_servers.partition(":")
    if db.hostname not in LOCAL_HOSTS or kafka_host not in LOCAL_HOSTS or "," in kafka_port:
        raise ConfigurationError(
            "the local stack runs on 127.0.0.1: ADCLICK_DATABASE_URL and "
            "ADCLICK_KAFKA_BOOTSTRAP_SERVERS must point there (unset them for the defaults)"
        )
    name = db.path.lstrip("/") or "adclick"
    user = db.username or "adclick"
    for what, value in (("database name", name), ("database user", user)):
        if not _NAME.match(value):
            raise ConfigurationError(f"ADCLICK_DATABASE_URL: {what} {value!r} is not a plain name")
    try:
        return LocalTargets(db.port or 5432, name, user, int(kafka_port or 9092))
    except ValueError:
        raise ConfigurationError(
            f"ADCLICK_KAFKA_BOOTSTRAP_SERVERS: bad port in {settings.kafka_bootstrap_servers!r}"
        ) from None


def with_local_roles(settings: Settings) -> Settings:
    """The settings with each process kind's URL (left unset) naming its own role.

    The local stack's database, as ADCLICK_DATABASE_URL names it, with the user
    replaced: ``adclick env``, the demo and the tests run each process as its role.
    """
    url = urlsplit(settings.database_url)
    address = f"{url.hostname}:{url.port}" if url.port else str(url.hostname)
    updates = {}
    for kind, role in PROCESS_ROLES.items():
        field = f"{kind.value}_database_url"
        if getattr(settings, field) is None:
            updates[field] = urlunsplit(url._replace(netloc=f"{role}@{address}"))
    return settings.model_copy(update=updates)


def stack_up(settings: Settings, say: Say) -> None:
    """Install what is missing and start TimescaleDB and the broker; idempotent.

    Every database role gets a generated password in ``<state>/secrets/pgpass``
    (adclick.stack.secrets), and the cluster asks every connection for it.
    """
    targets = local_targets(settings)
    if not timescaledb_installed():
        install_timescaledb(settings.state_dir, say)
    passwords = ensure_passwords(
        settings.state_dir, [SUPERUSER, targets.db_user, *PROCESS_ROLES.values()]
    )
    cluster = TimescaleCluster(settings.state_dir, targets.db_port)
    if not cluster.initialised():
        say(f"creating the database cluster in {cluster.data_dir}")
        cluster.init(passwords[SUPERUSER])
    if not cluster.running():
        say(f"starting TimescaleDB on 127.0.0.1:{targets.db_port}")
        cluster.start()
    if cluster.secure(passwords[SUPERUSER]):
        say(f"pg_hba.conf brought up to date: every role needs its password ({cluster.passfile})")
    cluster.ensure_database(targets.db_name, targets.db_user, passwords[targets.db_user])
    if current_revision(settings) != head_revision(settings):
        say("applying migrations")
    upgrade(settings)
    cluster.grant_logins(passwords)

    broker = TansuBroker(settings.state_dir, targets.kafka_port)
    if broker.pid() is None:
        if port_open("127.0.0.1", targets.kafka_port):
            raise ConfigurationError(
                f"port {targets.kafka_port} is taken by another process; "
                "set ADCLICK_KAFKA_BOOTSTRAP_SERVERS to a free port"
            )
        say(f"starting the Tansu broker on 127.0.0.1:{targets.kafka_port}")
        broker.start()
        _forget_offsets_of_new_topics(settings)
    created = create_topics(settings)
    if created:
        say(f"created topics: {', '.join(created)}")


def _forget_offsets_of_new_topics(settings: Settings) -> None:
    """A fresh in-memory broker holds fresh topics: stored offsets of old ones are void.

    Keeping them would make the workers seek past the first messages of the new topic.
    Counted data is untouched; only where to resume reading changes.
    """
    with connect(settings) as conn:
        conn.execute("DELETE FROM ingest_offsets WHERE topic = %s", (settings.clicks_topic,))


def stack_down(settings: Settings, say: Say) -> None:
    """Stop the broker and the database cluster; data of the database stays on disk."""
    targets = local_targets(settings)
    broker = TansuBroker(settings.state_dir, targets.kafka_port)
    if broker.pid() is not None:
        say("stopping the Tansu broker (its in-memory topics are dropped)")
        broker.stop()
    cluster = TimescaleCluster(settings.state_dir, targets.db_port)
    if cluster.initialised() and cluster.running():
        say("stopping TimescaleDB")
        cluster.stop()


@dataclass(frozen=True)
class StackStatus:
    """What runs of the local stack."""

    timescaledb_installed: bool
    database_running: bool
    broker_pid: int | None
    migration: str | None
    head: str | None

    @property
    def healthy(self) -> bool:
        """True when both services run and the schema is current."""
        return (
            self.database_running
            and self.broker_pid is not None
            and self.migration is not None
            and self.migration == self.head
        )


def stack_status(settings: Settings) -> StackStatus:
    """Inspect the local stack without changing it."""
    targets = local_targets(settings)
    cluster = TimescaleCluster(settings.state_dir, targets.db_port)
    running = cluster.initialised() and cluster.running()
    return StackStatus(
        timescaledb_installed=timescaledb_installed(),
        database_running=running,
        broker_pid=TansuBroker(settings.state_dir, targets.kafka_port).pid(),
        migration=current_revision(settings) if running else None,
        head=head_revision(settings),
    )
