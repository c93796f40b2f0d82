"""``adclick up / down / status``: the local stack as one unit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from adclick.db.connect import connect
from adclick.db.migrate import current_revision, head_revision, upgrade
from adclick.errors import ConfigurationError
from adclick.kafka.clients import create_topics
from adclick.settings import PROCESS_ROLES, Settings, Shard, shard_location
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
# Data directory of the local stack's shard i (i >= 1) under the state directory.
SHARD_DIR = "pgdata-shard"


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
    database_up(settings, TimescaleCluster(settings.state_dir, targets.db_port), passwords, say)
    for shard_settings, cluster in shard_clusters(settings):
        database_up(shard_settings, cluster, passwords, say)

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


def database_up(
    settings: Settings, cluster: TimescaleCluster, passwords: dict[str, str], say: Say
) -> None:
    """Make (once) and start ``cluster`` with the database ``settings`` name, migrated,
    and the process roles' logins; idempotent. The primary's and each local shard's."""
    targets = local_targets(settings)
    if not cluster.initialised():
        say(f"creating the database cluster in {cluster.data_dir}")
        cluster.init(passwords[SUPERUSER])
    if not cluster.running():
        say(f"starting TimescaleDB on 127.0.0.1:{cluster.port}")
        cluster.start()
    if cluster.secure(passwords[SUPERUSER]):
        say(f"pg_hba.conf brought up to date: every role needs its password ({cluster.passfile})")
    cluster.ensure_database(targets.db_name, targets.db_user, passwords[targets.db_user])
    if current_revision(settings) != head_revision(settings):
        say(f"applying migrations on 127.0.0.1:{cluster.port}")
    upgrade(settings)
    cluster.grant_logins(passwords)


def _forget_offsets_of_new_topics(settings: Settings) -> None:
    """A fresh in-memory broker holds fresh topics: stored offsets of old ones are void.

    Keeping them would make the workers seek past the first messages of the new topic.
    Counted data is untouched; only where to resume reading changes.
    """
    for shard in settings.shard_settings():
        with connect(shard) as conn:
            conn.execute("DELETE FROM ingest_offsets WHERE topic = %s", (settings.clicks_topic,))


def local_shards(settings: Settings, count: int) -> list[Shard]:
    """The local stack's ``count`` shards: the first is the primary's database, shard i
    a cluster of its own on the primary's port + 1 + i, each owning an even run of the
    clicks topic's partitions (docs/operations.md, Shards)."""
    targets = local_targets(settings)
    if not 1 <= count <= settings.topic_partitions:
        raise ConfigurationError(
            f"--shards {count}: between 1 and the clicks topic's {settings.topic_partitions} "
            "partitions (ADCLICK_TOPIC_PARTITIONS)"
        )
    bounds = [round(i * settings.topic_partitions / count) for i in range(count + 1)]
    ports = [targets.db_port, *(targets.db_port + 1 + i for i in range(1, count))]
    return [
        Shard(
            url=f"postgresql://127.0.0.1:{port}/{targets.db_name}",
            partitions=list(range(bounds[i], bounds[i + 1])),
        )
        for i, port in enumerate(ports)
    ]


def shard_clusters(settings: Settings) -> list[tuple[Settings, TimescaleCluster]]:
    """The local clusters of ADCLICK_SHARDS beyond the first (the primary's database), with
    the settings of their databases. Every shard must be on this machine."""
    if not settings.shards:
        return []
    targets = local_targets(settings)
    home = shard_location(settings.database_url)
    clusters = []
    for index, (shard, shard_settings) in enumerate(
        zip(settings.shards, settings.shard_settings(), strict=True)
    ):
        host, port, name = shard_location(shard.url)
        if index == 0:
            if (host, port, name) != home:
                raise ConfigurationError(
                    "the local stack's first shard is its primary database: the first URL "
                    "of ADCLICK_SHARDS must name ADCLICK_DATABASE_URL's database"
                )
            continue
        if host not in LOCAL_HOSTS or port == targets.db_port or name != targets.db_name:
            raise ConfigurationError(
                f"shard {index}: the local stack runs each shard on 127.0.0.1, on a port of "
                f"its own, with the database {targets.db_name!r}"
            )
        clusters.append((shard_settings, TimescaleCluster(settings.state_dir, int(port),
                                                          f"{SHARD_DIR}{index}")))  # fmt: skip
    return clusters


def existing_local_shards(settings: Settings) -> int:
    """How many shards the local stack was brought up with (1: not sharded)."""
    count = 1
    # Only the data directory is looked at: the port does not matter here.
    while TimescaleCluster(settings.state_dir, 0, f"{SHARD_DIR}{count}").initialised():
        count += 1
    return count


def with_local_shards(settings: Settings, count: int | None = None) -> Settings:
    """The settings with the local stack's shards in ADCLICK_SHARDS (unless it is set):
    ``count`` of them, or as many as the local stack has."""
    if settings.shards and count is None:
        return settings
    count = existing_local_shards(settings) if count is None else count
    if count == 1:
        return settings
    return settings.model_copy(update={"shards": local_shards(settings, count)})


def stack_down(settings: Settings, say: Say) -> None:
    """Stop the broker and the database clusters; data of the databases stays on disk."""
    targets = local_targets(settings)
    broker = TansuBroker(settings.state_dir, targets.kafka_port)
    if broker.pid() is not None:
        say("stopping the Tansu broker (its in-memory topics are dropped)")
        broker.stop()
    clusters = [TimescaleCluster(settings.state_dir, targets.db_port)]
    clusters += [cluster for _settings, cluster in shard_clusters(settings)]
    for cluster in clusters:
        if cluster.initialised() and cluster.running():
            say(f"stopping TimescaleDB on 127.0.0.1:{cluster.port}")
            cluster.stop()


@dataclass(frozen=True)
class StackStatus:
    """What runs of the local stack."""

    timescaledb_installed: bool
    database_running: bool
    broker_pid: int | None
    migration: str | None
    head: str | None
    # Shards beyond the primary's database: port -> schema revision (None: not running).
    shards: dict[int, str | None]

    @property
    def healthy(self) -> bool:
        """True when both services run and the schema is current."""
        return (
            self.database_running
            and self.broker_pid is not None
            and self.migration is not None
            and self.migration == self.head
            and all(revision == self.head for revision in self.shards.values())
        )


def stack_status(settings: Settings) -> StackStatus:
    """Inspect the local stack without changing it."""
    targets = local_targets(settings)
    cluster = TimescaleCluster(settings.state_dir, targets.db_port)
    running = cluster.initialised() and cluster.running()
    shards = {
        shard.port: current_revision(shard_settings)
        if shard.initialised() and shard.running()
        else None
        for shard_settings, shard in shard_clusters(with_local_shards(settings))
    }
    return StackStatus(
        timescaledb_installed=timescaledb_installed(),
        database_running=running,
        broker_pid=TansuBroker(settings.state_dir, targets.kafka_port).pid(),
        migration=current_revision(settings) if running else None,
        head=head_revision(settings),
        shards=shards,
    )
