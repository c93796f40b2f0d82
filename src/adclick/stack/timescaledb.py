"""TimescaleDB for the local stack: build, install and run a private cluster.

The Apache-2 edition is built from Debian's source package (the machine's apt sources
stay untouched: a private apt configuration under the state directory names the
deb-src suite) against the machine's PostgreSQL 15 development files, then installed
into that PostgreSQL. The cluster itself lives under ``<state>/pgdata``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from adclick.db.connect import Connection
from adclick.db.roles import grant_logins, set_password
from adclick.errors import StackError
from adclick.stack.process import read_pid, run, wait_for_port
from adclick.stack.secrets import passfile_path

PG_MAJOR = 15
# Trixie: its timescaledb (2.19) builds against PG 15, and a stable suite stays repeatable.
SOURCE_SUITES = ("trixie", "trixie-security")
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
BUILD_PACKAGES = (f"postgresql-server-dev-{PG_MAJOR}", "cmake", "gcc", "make", "dpkg-dev")
# The flags of Debian's own debian/rules, minus the test suites.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
    "-DSEND_TELEMETRY_DEFAULT=OFF",
    "-DUSE_TELEMETRY=OFF",
    "-DAPACHE_ONLY=1",
    "-DREGRESS_CHECKS=OFF",
    "-DTAP_CHECKS=OFF",
    "-DWARNINGS_AS_ERRORS=OFF",
)
CLUSTER_USER = "postgres"  # initdb refuses to run as root
SUPERUSER = "postgres"
# Every connection proves its role's password; the first line marks the file as ours.
PG_HBA = """\
# adclick local stack: SCRAM-SHA-256 passwords for every role, over TCP and the socket.
# No trust and no peer: a local OS user connects as a role only with its password
# (<state>/secrets/pgpass). Written by adclick.stack.timescaledb.
local   all           all                  scram-sha-256
host    all           all                  127.0.0.1/32   scram-sha-256
host    all           all                  ::1/128        scram-sha-256
# The local read replica's WAL stream (adclick up --replica): its role only.
host    replication   adclick_replicator   127.0.0.1/32   scram-sha-256
"""
# The role a standby streams the WAL as (adclick.stack.replica).
REPLICATOR = "adclick_replicator"

Say = Callable[[str], None]


def pg_bindir() -> Path:
    """The machine's PostgreSQL 15 server binaries."""
    return Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")


def _pg_config(flag: str) -> Path:
    return Path(run([pg_bindir() / "pg_config", flag]).strip())


def timescaledb_installed() -> bool:
    """True when the timescaledb extension is installed into the machine's PostgreSQL."""
    if not (pg_bindir() / "pg_config").exists():
        return False
    control = _pg_config("--sharedir") / "extension" / "timescaledb.control"
    library = _pg_config("--pkglibdir") / "timescaledb.so"
    return control.exists() and library.exists()


def _missing_packages() -> list[str]:
    missing = []
    for package in BUILD_PACKAGES:
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        )
        if "install ok installed" not in status.stdout:
            missing.append(package)
    return missing


def _apt_options(apt_dir: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={apt_dir / 'sources.list'}",
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache::Archives={apt_dir / 'archives'}",
    ]  # fmt: skip


def install_timescaledb(state_dir: Path, say: Say) -> None:
    """Build TimescaleDB (Apache-2 edition) from Debian's source package and install it."""
    if os.geteuid() != 0:
        raise StackError("installing TimescaleDB needs root (apt-get and make install)")
    missing = _missing_packages()
    if missing:
        say(f"installing build dependencies: {' '.join(missing)}")
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing])
    apt_dir = (state_dir / "build" / "apt").resolve()
    (apt_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt_dir / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    mirror = {"trixie": "debian", "trixie-security": "debian-security"}
    (apt_dir / "sources.list").write_text(
        "".join(
            f"deb-src [signed-by={DEBIAN_KEYRING}] http://deb.debian.org/{mirror[suite]} "
            f"{suite} main\n"
            for suite in SOURCE_SUITES
        )
    )
    say("fetching Debian's timescaledb source package")
    run(["apt-get", *_apt_options(apt_dir), "update", "-qq"])
    src_dir = (state_dir / "build" / "src").resolve()
    shutil.rmtree(src_dir, ignore_errors=True)
    src_dir.mkdir(parents=True)
    run(["apt-get", *_apt_options(apt_dir), "source", "timescaledb"], cwd=src_dir)
    trees = [p for p in src_dir.iterdir() if p.is_dir() and p.name.startswith("timescaledb")]
    if len(trees) != 1:
        raise StackError(f"expected one unpacked timescaledb source tree in {src_dir}")
    build_dir = trees[0] / "build"
    build_dir.mkdir()
    say(f"building {trees[0].name} against PostgreSQL {PG_MAJOR} (about 30 s on two cores)")
    run(
        ["cmake", "..", f"-DPG_CONFIG={pg_bindir() / 'pg_config'}", *CMAKE_FLAGS],
        cwd=build_dir,
    )
    run(["make", f"-j{os.cpu_count() or 2}"], cwd=build_dir)
    run(["make", "install"], cwd=build_dir)
    if not timescaledb_installed():
        raise StackError("timescaledb was built but is not found in PostgreSQL's directories")


def shared_buffers_mb() -> int:
    """A quarter of the machine's memory (PostgreSQL's usual advice), 128 MB to 8 GB.

    Ingest writes the current quarter hour's per-minute rollup indexes all over (keyed
    ad first, in quarter-hour chunks: migration 0010): at the design scale up to ~0.9 GB
    of them with uniformly popular ads, which stay in shared buffers (docs/benchmarks.md,
    bench day; docs/operations.md).
    """
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(128, min(8192, total // 4 // 2**20))


def _settings_conf(port: int, socket_dir: Path) -> str:
    # Durable settings (fsync, synchronous_commit) stay at their defaults: counts are
    # billed, and a committed batch must survive a crash of the machine too.
    # max_locks_per_transaction: a query over the 90 days of quarter-hour chunks of a
    # per-minute rollup locks ~8,640 chunks and their indexes (~26,000 locks); the shared
    # lock table holds this times max_connections, so two such queries must fit.
    # wal_buffers: ingest writes ~0.7 kB of WAL per click; with the default 16 MB the
    # buffers filled ~55,000 times in a 3-million-click run and backends wrote WAL
    # themselves; with 64 MB 0 and 3,794 times, and 5-7% more clicks/s (docs/benchmarks.md).
    # wal_compression lz4: late in a quarter-hour chunk of uniformly popular ads, ingest
    # writes a full-page image every ~14 clicks, which pglz (`on`) compressed at a cost
    # of a fifth of ingest's speed; lz4 is several times cheaper for the same bytes
    # (docs/benchmarks.md, "Full-page images compressed with lz4").
    return f"""
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
shared_buffers = {shared_buffers_mb()}MB
work_mem = 64MB
maintenance_work_mem = 256MB
wal_buffers = 64MB
max_wal_size = 8GB
checkpoint_timeout = 15min
wal_compression = lz4
max_locks_per_transaction = 1024
logging_collector = off
log_min_messages = warning
"""


class TimescaleCluster:
    """The private cluster under ``<state>/pgdata``, run as the ``postgres`` user when root."""

    def __init__(self, state_dir: Path, port: int, name: str = "pgdata") -> None:
        """``name``: the data directory under the state directory (``pgdata`` for the
        primary, ``pgdata-replica`` for the local read replica)."""
        self.state_dir = state_dir.resolve()
        self.port = port
        self.data_dir = self.state_dir / name
        self.socket_dir = self.state_dir / "run"
        log_name = "postgresql" if name == "pgdata" else name.replace("pgdata", "postgresql")
        self.log_file = self.state_dir / "logs" / f"{log_name}.log"
        self.passfile = passfile_path(self.state_dir)

    @property
    def _user(self) -> str | None:
        return CLUSTER_USER if os.geteuid() == 0 else None

    def _own(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            shutil.chown(path, self._user, self._user)

    def initialised(self) -> bool:
        """True when initdb has run."""
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        """True when the postmaster of this cluster is running."""
        command = [str(pg_bindir() / "pg_ctl"), "status", "-D", str(self.data_dir)]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, capture_output=True).returncode == 0

    def init(self, superuser_password: str) -> None:
        """initdb with UTF-8, UTC and password (SCRAM) authentication for every connection."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            # The postgres user must be able to reach the state directory.
            self.state_dir.chmod(0o755)
        self._own(self.data_dir)
        self._own(self.socket_dir)
        self._own(self.log_file.parent)
        # initdb reads the superuser's password from a file; only the cluster's user can.
        pwfile = self.socket_dir / "initdb-password"
        descriptor = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(superuser_password + "\n")
        if self._user is not None:
            shutil.chown(pwfile, self._user, self._user)
        try:
            run(
                [
                    pg_bindir() / "initdb", "-D", self.data_dir, "-U", SUPERUSER,
                    "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                    "--locale=C.UTF-8", "--no-instructions",
                ],
                user=self._user,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba()
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_settings_conf(self.port, self.socket_dir))

    def _write_hba(self) -> None:
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(PG_HBA)
        if self._user is not None:
            shutil.chown(hba, self._user, self._user)

    def secure(self, superuser_password: str) -> bool:
        """Give a running cluster this version's pg_hba.conf: one made with trust (before
        password authentication) then asks every role for its password, one made before
        the read replica then lets the replicator stream. True when it changed anything."""
        hba = self.data_dir / "pg_hba.conf"
        current = hba.read_text()
        if current == PG_HBA:
            return False
        if not current.startswith(PG_HBA.splitlines()[0]):
            # That pg_hba.conf trusts local connections: the last time no password is needed.
            with psycopg.connect(
                host="127.0.0.1",
                port=self.port,
                user=SUPERUSER,
                dbname="postgres",
                autocommit=True,
            ) as conn:
                set_password(conn, SUPERUSER, superuser_password, login=False)
        self._write_hba()
        self.reload()
        return True

    def configure(self, **parameters: str) -> None:
        """Set server parameters (appended to postgresql.conf, the last line wins) and
        reload them; those that need a restart take effect at the next start."""
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = '{value}'\n" for name, value in parameters.items())
        if self.running():
            self.reload()

    def reload(self) -> None:
        """Make the running server read its configuration files again."""
        run([pg_bindir() / "pg_ctl", "reload", "-D", self.data_dir], user=self._user)

    def start(self, timeout_s: int = 60) -> None:
        """Start the postmaster and wait (``timeout_s``) for it to accept connections:
        after a crash it first replays the WAL since the last checkpoint, which for a busy
        database takes longer than a clean start."""
        self._own(self.socket_dir)
        run(
            [
                pg_bindir() / "pg_ctl", "start", "-D", self.data_dir, "-l", self.log_file,
                "-w", "-t", str(timeout_s), "-o", f"-p {self.port} -k {self.socket_dir}",
            ],
            user=self._user,
        )  # fmt: skip
        wait_for_port("127.0.0.1", self.port, 30, "PostgreSQL")

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid (its postmaster.pid file), None when stopped."""
        return read_pid(self.data_dir / "postmaster.pid") if self.running() else None

    def stop(self, *, immediate: bool = False) -> None:
        """Fast shutdown: running transactions roll back, committed data is safe.

        ``immediate``: no shutdown checkpoint, as a crash would leave it (the next start
        recovers from the WAL); fault tests use it.
        """
        mode = "immediate" if immediate else "fast"
        if self.running():
            run(
                [pg_bindir() / "pg_ctl", "stop", "-D", self.data_dir, "-m", mode, "-w"],
                user=self._user,
            )

    def _superuser(self, database: str = "postgres") -> Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            dbname=database,
            autocommit=True,
            passfile=str(self.passfile),
        )

    def ensure_database(self, name: str, owner: str, owner_password: str) -> None:
        """Create the owner role and the database with timescaledb, when missing; the owner's
        password is (re)set to ``owner_password``."""
        with self._superuser() as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone():
                # CREATEDB for the test suite's per-test databases, CREATEROLE for the
                # process and analyst roles; not a superuser.
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE").format(
                        sql.Identifier(owner)
                    )
                )
            set_password(conn, owner, owner_password)
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(name), sql.Identifier(owner)
                    )
                )
        # The extension needs a superuser; the migrations only check it is there.
        with self._superuser(name) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")

    def ensure_replicator(self, password: str) -> None:
        """The role a standby streams the WAL as: REPLICATION and LOGIN, nothing else."""
        with self._superuser() as conn:
            role = sql.Identifier(REPLICATOR)
            if not conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (REPLICATOR,)
            ).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} REPLICATION").format(role))
            set_password(conn, REPLICATOR, password)

    def base_backup_of(self, primary_port: int, password: str) -> None:
        """Make this (uninitialised) cluster a streaming standby of the cluster on
        ``primary_port``: pg_basebackup with -R, which leaves standby.signal and the
        primary's address in postgresql.auto.conf (with the replicator's password: the
        data directory is the cluster user's alone, 0700)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.socket_dir)
        self._own(self.log_file.parent)
        self._own(self.data_dir)  # empty, the cluster user's: pg_basebackup fills it
        self.data_dir.chmod(0o700)
        run(
            [
                pg_bindir() / "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary_port),
                "-U", REPLICATOR, "-D", self.data_dir, "-R", "-X", "stream",
                "--checkpoint=fast", "--no-password",
            ],
            user=self._user,
            env={"PGPASSWORD": password},
        )  # fmt: skip

    def grant_logins(self, passwords: dict[str, str]) -> None:
        """Make the process roles (made by the migrations) logins with these passwords."""
        with self._superuser() as conn:
            grant_logins(conn, passwords)
