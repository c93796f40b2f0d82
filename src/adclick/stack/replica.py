"""The local stack's read replica (``adclick up --replica``): a streaming standby.

PostgreSQL's own physical replication: ``pg_basebackup`` copies the primary's cluster into
``<state>/pgdata-replica`` and the standby then replays the primary's WAL as it is
written, so it holds every database of the primary (the tests' per-test databases too),
read-only. It listens on the port of ADCLICK_DATABASE_READ_URL when that names this
machine, else on the primary's port + 1. The API reads from it when
ADCLICK_DATABASE_READ_URL is set (docs/operations.md, Read replicas).
"""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit, urlunsplit

from adclick.errors import ConfigurationError
from adclick.settings import PROCESS_ROLES, ProcessKind, Settings
from adclick.stack.lifecycle import LOCAL_HOSTS, local_targets
from adclick.stack.secrets import ensure_passwords
from adclick.stack.timescaledb import REPLICATOR, Say, TimescaleCluster

REPLICA_DIR = "pgdata-replica"


def replica_port(settings: Settings) -> int:
    """Where the local replica listens: ADCLICK_DATABASE_READ_URL's port, or the
    primary's + 1."""
    primary_port = local_targets(settings).db_port
    if settings.database_read_url is None:
        return primary_port + 1
    url = urlsplit(settings.database_read_url)
    if url.hostname not in LOCAL_HOSTS or url.port in (None, primary_port):
        raise ConfigurationError(
            "the local replica runs on 127.0.0.1 on a port of its own: "
            "ADCLICK_DATABASE_READ_URL must name one (or be unset for the primary's port + 1)"
        )
    return int(url.port)


def local_read_url(settings: Settings) -> str:
    """The local replica's URL for the API: its database, as role adclick_api."""
    url = urlsplit(settings.database_url)
    role = PROCESS_ROLES[ProcessKind.API]
    return urlunsplit(url._replace(netloc=f"{role}@127.0.0.1:{replica_port(settings)}"))


def replica_cluster(settings: Settings) -> TimescaleCluster:
    """The local replica's cluster (it may not exist yet)."""
    return TimescaleCluster(settings.state_dir, replica_port(settings), REPLICA_DIR)


def replica_up(settings: Settings, say: Say) -> TimescaleCluster:
    """Make (once) and start the standby of the running local primary; idempotent."""
    primary = TimescaleCluster(settings.state_dir, local_targets(settings).db_port)
    if not primary.running():
        raise ConfigurationError("the local primary is not running: `adclick up` first")
    replica = replica_cluster(settings)
    if not replica.initialised():
        password = ensure_passwords(settings.state_dir, [REPLICATOR])[REPLICATOR]
        primary.ensure_replicator(password)
        say(f"copying the primary into {replica.data_dir} (pg_basebackup)")
        try:
            replica.base_backup_of(primary.port, password)
        except Exception:
            shutil.rmtree(replica.data_dir, ignore_errors=True)  # a half copy is no standby
            raise
    if not replica.running():
        say(f"starting the read replica on 127.0.0.1:{replica.port}")
        replica.start()
    return replica


def replica_down(settings: Settings, say: Say) -> None:
    """Stop the standby (its copy stays on disk and catches up at the next start)."""
    replica = replica_cluster(settings)
    if replica.initialised() and replica.running():
        say("stopping the read replica")
        replica.stop()


def replica_remove(settings: Settings, say: Say) -> None:
    """Stop the standby and delete its copy."""
    replica_down(settings, say)
    replica = replica_cluster(settings)
    if replica.data_dir.exists():
        shutil.rmtree(replica.data_dir)
        say(f"removed {replica.data_dir}")
