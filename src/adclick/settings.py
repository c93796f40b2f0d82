"""The single source of configuration: environment variables ``ADCLICK_*``.

Every setting can also come from a TOML file named by ``ADCLICK_CONFIG_FILE``;
environment variables win over the file. The same code therefore runs against the
local stack (the defaults) and against a real Kafka cluster and TimescaleDB.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from adclick.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
# A web origin as browsers send it in the Origin header (RFC 6454).
_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
# The columns every filtered rollup has besides its dimensions (sql/schema/filtered_rollup.sql).
_ROLLUP_COLUMNS = frozenset({"minute", "ad_id", "clicks"})
# PostgreSQL's longest identifier (NAMEDATALEN - 1), and the name of a filtered rollup's
# BRIN index after its table's (db/rollups.py): the longest name adclick makes of it.
_MAX_NAME_BYTES = 63
ROLLUP_BRIN_SUFFIX = "_minute_brin"


# A B-tree entry holds at most 2,704 bytes (BTMaxItemSize on 8 kB pages); a filtered
# rollup's key is (ad_id, dimensions..., minute). Widest values: an id or attribute of 128
# characters of 4 UTF-8 bytes (4-byte header, int alignment), a country of 3 ASCII letters
# (1-byte header), the minute (8 bytes, 8-aligned), after the entry's 8-byte header. Values
# this wide do not compress, so a key of wider sets would refuse such clicks.
_BTREE_ENTRY_BYTES = 2704
_WIDEST_TEXT_BYTES = 4 + 4 * 128
_WIDEST_COUNTRY_BYTES = 4  # 1 + 3, padded to the next text's alignment


def rollup_key_bytes(dimensions: Sequence[str]) -> int:
    """The most bytes a B-tree entry of the rollup of ``dimensions`` can take."""
    widths = [_WIDEST_COUNTRY_BYTES if d == "country" else _WIDEST_TEXT_BYTES for d in dimensions]
    return 8 + _WIDEST_TEXT_BYTES + sum(widths) + 8 + 8  # header, ad_id, ..., padding, minute


def rollup_table_name(dimensions: Sequence[str]) -> str:
    """The table of a filtered rollup of ``dimensions`` (as the settings hold them:
    sorted), e.g. ``clicks_1m_by_country``."""
    return "clicks_1m_by_" + "_".join(dimensions)


# Every duration setting is at most this long: longer ones overflow date arithmetic
# (a datetime ends at year 9999) and mean nothing for a click service.
MAX_DURATION = timedelta(days=36_500)
_ZERO = timedelta(0)
_ONE_SECOND = timedelta(seconds=1)
# Kafka's rule for topic names (and what our consumer groups may be called).
_KAFKA_NAME = r"^[A-Za-z0-9._-]{1,249}$"
# Longest window the closer and the API rank ahead of queries: a day.
_LONGEST_WINDOW_MINUTES = 1_440

# Ports of the local stack: private, away from the usual 5432 / 9092.
LOCAL_DB_PORT = 55432
LOCAL_KAFKA_PORT = 59092


class Role(StrEnum):
    """What a bearer token may do. An admin can do everything a reader can."""

    READER = "reader"
    ADMIN = "admin"


class ProcessKind(StrEnum):
    """The kinds of adclick process; each connects as its own database role."""

    INGEST = "ingest"
    CLOSE = "close"
    API = "api"
    MAINTAIN = "maintain"


# The database role of each process kind (migration 0007 makes them).
PROCESS_ROLES = {
    ProcessKind.INGEST: "adclick_ingest",
    ProcessKind.CLOSE: "adclick_closer",
    ProcessKind.API: "adclick_api",
    ProcessKind.MAINTAIN: "adclick_maintain",
}


class LogFormat(StrEnum):
    AUTO = "auto"
    TEXT = "text"
    JSON = "json"


class ApiToken(BaseModel):
    """One accepted bearer token, stored as its SHA-256 so the configuration holds no secret."""

    # Shown in logs: printable text only, so a name cannot hide escape sequences there.
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Shard(BaseModel):
    """One database of a sharded deployment and the Kafka partitions of the clicks topic
    it owns (docs/operations.md, Shards).

    ``url`` says where the database is (host, port, database name, options): its own
    host, hostaddr, port and name, never the home URL's; each process connects there with
    the user and password of its own URL (ADCLICK_DATABASE_URL or its role's), unless
    ``url`` names a user itself. ``read_url``: a streaming standby of this shard for the
    API (as ADCLICK_DATABASE_READ_URL is for one database). Two shards must be two
    databases and a read_url a standby of its own shard: every process asks the servers
    at its start (adclick.db.identity) and refuses them otherwise.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=2_000)
    partitions: list[int] = Field(min_length=1)
    read_url: str | None = Field(None, min_length=1, max_length=2_000)

    @field_validator("url", "read_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"{value!r} is not a postgresql:// URL")
        if value is not None:
            # Read by libpq (where it leads) and by SQLAlchemy (how it is rewritten):
            # a URL either cannot read is refused here, not when a process connects.
            shard_location(value)
            _parse_url(value)
        return value


class Settings(BaseSettings):
    """adclick settings. Each field is read from ``ADCLICK_<FIELD NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ADCLICK_", extra="forbid", allow_inf_nan=False)

    # Set by shard_settings (no variable sets it): this is one shard's database, whose
    # cold files go under a directory of its own (``shard_cold_directory``).
    _one_shard: bool = PrivateAttr(False)

    state_dir: Path = Field(
        Path(".adclick"),
        description="Where the local stack keeps its database cluster, broker and logs.",
    )
    log_format: LogFormat = Field(
        LogFormat.AUTO,
        description="Log lines as text or JSON objects; auto: text on a terminal, else JSON.",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="Address the --metrics-port servers of ingest and the closer listen on "
        "(0.0.0.0 in a container).",
    )
    database_url: str = Field(
        f"postgresql://adclick@127.0.0.1:{LOCAL_DB_PORT}/adclick",
        description="libpq URL of the TimescaleDB database, as the schema's owner: "
        "`adclick migrate` and every process without its own URL below connect with it.",
    )
    ingest_database_url: str | None = Field(
        None,
        description="URL for `adclick ingest`, as role adclick_ingest (or a member); "
        "default ADCLICK_DATABASE_URL.",
    )
    close_database_url: str | None = Field(
        None,
        description="URL for `adclick close`, as role adclick_closer (or a member); "
        "default ADCLICK_DATABASE_URL.",
    )
    api_database_url: str | None = Field(
        None,
        description="URL for `adclick api`, as role adclick_api (or a member); "
        "default ADCLICK_DATABASE_URL.",
    )
    maintain_database_url: str | None = Field(
        None,
        description="URL for `adclick maintain`, `reconcile`, `recalculate`, `retention` "
        "and `cold`, as role adclick_maintain (or a member); default ADCLICK_DATABASE_URL.",
    )
    database_read_url: str | None = Field(
        None,
        description="libpq URL of a streaming standby (read replica) of the database, as "
        "role adclick_api (or a member): the API's queries, its window and hour indexes and "
        "its readiness read there; retention changes still go to the primary "
        "(ADCLICK_API_DATABASE_URL). It must reach the primary's own database (the API "
        "asks both servers at its start and in /readyz). Unset: the API reads the primary.",
    )
    shards: list[Shard] = Field(
        default_factory=list,
        description="Partition-aligned shards (JSON list of objects with url, partitions and "
        "optionally read_url): each database holds the clicks of the clicks topic's "
        "partitions it lists, which together must be 0 .. ADCLICK_TOPIC_PARTITIONS - 1, "
        "each once. ADCLICK_DATABASE_URL stays the home of what is not per ad (the "
        "closer's lists). Empty: one database holds everything.",
    )
    shard_partitioner: Literal["all", "consistent_random", "murmur2_random"] = Field(
        "all",
        description="How the producers of the clicks topic choose a partition from the ad "
        "id (the message key), so that adClicks reads an ad's counts from the shard "
        "owning its partition only: consistent_random (librdkafka's default: confluent-kafka "
        "and adclick's own collector and load generator) or murmur2_random (the Java "
        "client's default). all: every shard is asked, whatever the producers do. Without "
        "ADCLICK_SHARDS it has no effect.",
    )
    database_passfile: Path | None = Field(
        None,
        description="Password file in libpq's format (host:port:database:user:password "
        "lines, the first match wins) for database URLs without a password, e.g. a Docker "
        "secret; default <state_dir>/secrets/pgpass when it exists (the local stack's), "
        "else libpq's own (PGPASSFILE, ~/.pgpass).",
    )
    kafka_bootstrap_servers: str = Field(
        f"127.0.0.1:{LOCAL_KAFKA_PORT}", description="Kafka bootstrap servers, comma separated."
    )
    kafka_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka properties for every client (JSON object), "
        'e.g. {"security.protocol": "SASL_SSL"}. They win over adclick\'s tuning (linger.ms, '
        "acks, fetch sizes); what adclick sets for correctness (the ingest consumer's "
        "group.id, enable.auto.commit, enable.auto.offset.store and auto.offset.reset) may "
        "not be given another value: the process refuses to start, naming it. A "
        "group.instance.id (static membership) names the host: each ingest worker process "
        "joins as <id>-worker-<n>. An incremental rebalance protocol (cooperative-sticky, "
        "or group.protocol consumer) is followed.",
    )
    clicks_topic: str = Field(
        "ad-clicks", pattern=_KAFKA_NAME, description="Topic of click events (key: ad_id)."
    )
    dlq_topic: str = Field(
        "ad-clicks-dlq", pattern=_KAFKA_NAME, description="Dead-letter topic for rejected input."
    )
    top_ads_topic: str = Field(
        "ad-top-ads", pattern=_KAFKA_NAME, description="Topic of published top-N lists."
    )
    topic_replication_factor: int = Field(
        1,
        ge=1,
        le=100,
        description="Replication factor of topics adclick creates (3 in production).",
    )
    topic_partitions: int = Field(
        8, ge=1, le=100_000, description="Partitions of the clicks topic when adclick creates it."
    )
    consumer_group: str = Field(
        "adclick-ingest", pattern=_KAFKA_NAME, description="Consumer group of ingest workers."
    )
    kafka_session_timeout_ms: int = Field(
        6000,
        ge=1000,
        le=3_600_000,
        description="Consumer session timeout. Short, because a long one makes the first "
        "group join wait on the Tansu broker.",
    )

    dimension_sets: list[list[str]] = Field(
        default_factory=lambda: [["country"]],
        description="Filtered per-minute rollups, one per set of dimensions (JSON list of "
        'lists). "country" is a column of every event; other names are read from the '
        "event's further attributes. At most 4 dimensions besides country per set: a "
        "rollup's key must fit an index entry whatever the values.",
    )
    ingest_batch_size: int = Field(
        200_000,
        ge=1,
        le=10_000_000,
        description="Most events one ingest transaction holds. Batches this large form only "
        "with a backlog (otherwise the batch timeout ends them first); then larger batches "
        "fold more repeated (minute, ad) keys into one upsert.",
    )
    ingest_batch_timeout_s: float = Field(
        0.25, gt=0, le=60, description="Longest wait for a batch to fill before it is written."
    )
    ingest_recent_clicks: int = Field(
        1_000_000,
        ge=0,
        le=100_000_000,
        description="Keys of recent clicks each worker remembers (two generations of this "
        "many) to drop duplicates before the database; 0 turns the memory off. About 200 "
        "bytes each with 32-character click ids (measured: 206 MB for a million).",
    )
    allowed_lateness: timedelta = Field(
        timedelta(seconds=60),
        ge=_ZERO,
        le=MAX_DURATION,
        description="How far behind a partition's newest event time an event may arrive "
        "before it counts as late (it is still counted).",
    )
    dedup_horizon: timedelta = Field(
        timedelta(days=7),
        ge=_ONE_SECOND,
        le=MAX_DURATION,
        description="Events older than this behind their partition's newest event time "
        "cannot be checked for duplicates (raw data may be tiered away) and are "
        "dead-lettered. Equal to the hot retention of raw_clicks.",
    )
    max_clock_skew: timedelta = Field(
        timedelta(minutes=5),
        ge=_ZERO,
        le=MAX_DURATION,
        description="Events stamped further than this in the future (wall clock) are "
        "dead-lettered.",
    )

    minute_rollup_retention: timedelta = Field(
        timedelta(days=90),
        ge=_ONE_SECOND,
        le=MAX_DURATION,
        description="How long per-minute rollups are kept; query windows that start "
        "earlier are refused.",
    )
    query_dimensions: list[str] = Field(
        default_factory=lambda: ["app", "country", "device", "os"],
        description="Attributes a query may filter by (JSON list). Those of a dimension "
        "set are answered from its filtered rollup; the others from raw_clicks, within "
        "the dedup horizon (raw data's hot range).",
    )

    idle_partition_timeout: timedelta = Field(
        timedelta(seconds=30),
        ge=_ONE_SECOND,
        le=MAX_DURATION,
        description="A partition whose last batch is this much older (wall clock) than the "
        "newest batch of any partition stops holding the global watermark back, so an "
        "idle partition cannot stall minute closing forever.",
    )
    close_windows: list[int] = Field(
        default_factory=lambda: [1, 5, 15, 60],
        description="Window lengths (minutes) the minute closer ranks at every minute.",
    )
    close_filters: list[dict[str, list[str]]] = Field(
        default_factory=list,
        description="Filters the minute closer ranks besides the unfiltered list (JSON list "
        'of objects, e.g. [{"country": ["US"]}]); each must be covered by a dimension set.',
    )
    close_top_n: int = Field(100, ge=1, le=10_000, description="Length of the closer's top lists.")
    close_interval_s: float = Field(
        2.0,
        gt=0,
        le=3_600,
        description="How often the closer looks for closable minutes and changes.",
    )
    close_revision_interval: timedelta = Field(
        timedelta(seconds=60),
        ge=_ZERO,
        le=MAX_DURATION,
        description="Least time between two re-rankings of one closed list that late events "
        "changed: bounds revisions under a steady trickle of late events.",
    )
    close_revision_horizon: timedelta = Field(
        timedelta(hours=2),
        ge=_ONE_SECOND,
        le=MAX_DURATION,
        description="How far behind the global watermark a closed list is still revised "
        "when late events change it (counted from the watermark, so lists closed behind a "
        "lagging partition are revised too); older lists stay as published "
        "(reconciliation checks them).",
    )

    cold_storage_url: str | None = Field(
        None,
        description="Where cold (Parquet) files go: any fsspec URL (s3://bucket/adclick, "
        "a local path); default <state_dir>/cold.",
    )

    api_host: str = Field("127.0.0.1", description="Address the GraphQL API listens on.")
    api_port: int = Field(58080, ge=1, le=65535, description="Port of the GraphQL API.")
    api_tokens: list[ApiToken] = Field(
        default_factory=list,
        description="Bearer tokens the API accepts (JSON list of objects with name, role "
        "and sha256, the hex SHA-256 of the token). `adclick api-token` makes one.",
    )
    api_allow_anonymous: bool = Field(
        False, description="Let requests without a token read (role reader)."
    )
    api_graphiql: bool = Field(
        False, description="Serve the GraphiQL IDE at /graphql (development)."
    )
    api_cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins (scheme://host[:port], or * for any) whose pages may call "
        "the API from a browser (CORS). None by default: the API's own pages at / need "
        "none. Tokens travel in the Authorization header, never in cookies.",
    )
    api_access_log: bool = Field(
        False,
        description="Log every HTTP request (one line each). Off by default: at thousands "
        "of requests a second the log line costs more than the answer; /metrics counts "
        "requests and their latency per operation.",
    )
    api_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API worker processes. Above 1, `adclick api` holds the window and hour "
        "indexes once and serves them to its workers, which do the HTTP and GraphQL work "
        "(docs/api.md, Workers); about one per core.",
    )
    api_trusted_documents_only: bool = Field(
        False,
        description="Answer only the frontend's operations (graphql/operations/), sent by "
        "text or by documentId (sha256:<hex> or the file name); any other document is "
        "refused with DOCUMENT_NOT_TRUSTED. documentId is accepted either way.",
    )
    api_cache_max_age_s: int = Field(
        60,
        ge=0,
        le=86_400,
        description="How long a browser or gateway may reuse an answer over complete "
        "windows (Cache-Control max-age); it changes only with clicks later than the "
        "watermark. Other answers are sent with no-cache and an ETag.",
    )
    api_max_limit: int = Field(1000, ge=1, le=100_000, description="Largest topAds limit.")
    api_max_depth: int = Field(10, ge=1, le=100, description="Deepest GraphQL query accepted.")
    api_max_aliases: int = Field(
        20, ge=1, le=1_000, description="Most aliases in one query (each can be a whole topAds)."
    )
    api_max_tokens: int = Field(
        2000, ge=1, le=1_000_000, description="Most tokens in one query document."
    )
    api_response_cache_mb: int = Field(
        64,
        ge=0,
        le=65_536,
        description="Memory for answers the API made from its indexes alone and sends "
        "again to identical requests until the indexes next change (0: none kept); with "
        "several workers, each worker's.",
    )
    api_max_body_bytes: int = Field(
        65_536,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request the API reads: an HTTP body (refused with 413 before "
        "it is parsed), a GET query string, or a WebSocket message.",
    )
    api_max_filter_values: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Most filter values in one request, summed over its fields and dimensions.",
    )
    api_statement_timeout_s: float = Field(
        5.0,
        gt=0,
        le=3_600,
        description="Longest SQL statement a request may run (PostgreSQL statement_timeout "
        "on the API's request connections); a cancelled one is refused with QUERY_TIMEOUT.",
    )
    api_max_replica_lag_s: float = Field(
        30.0,
        gt=0,
        le=86_400,
        description="With ADCLICK_DATABASE_READ_URL: /readyz fails while the replica's "
        "replay is further behind the primary than this (measured against the primary's "
        "own WAL end, which the API reads), or it does not stream at all.",
    )
    api_max_request_cost: int = Field(
        1_000_000,
        ge=1,
        le=10**12,
        description="Most cost one request may have: the sum over its adClicks and topAds "
        "fields of their window's minutes, minutes answered from raw clicks counted "
        "ADCLICK_API_RAW_FILTER_COST times.",
    )
    api_raw_filter_cost: int = Field(
        40,
        ge=1,
        le=1_000_000,
        description="Cost of a window minute answered from raw clicks (a filter no "
        "dimension set covers), in minutes of a rollup.",
    )
    api_max_series_points: int = Field(
        10_080,
        ge=1,
        le=1_000_000,
        description="Most buckets in one adClicks series (a week of minutes).",
    )
    api_max_batch_ads: int = Field(
        1_000,
        ge=1,
        le=100_000,
        description="Most ads one adsClicks field may ask for.",
    )
    api_max_history_lists: int = Field(
        1440,
        ge=1,
        le=100_000,
        description="Most minutes of stored lists one topAdsHistory returns.",
    )
    api_cache_minutes: int = Field(
        180,
        ge=0,
        le=10_080,
        description="Complete minutes the API keeps in memory for topAds; windows inside "
        "them are ranked without SQL. About 12 bytes per (ad, minute) with clicks, plus "
        "16 per filtered rollup row. 0 turns the window index off.",
    )
    api_hour_cache_hours: int = Field(
        24,
        ge=0,
        le=2_160,
        description="Hours before the window index that the API keeps in memory, so "
        "topAds windows of up to this many hours, filtered or not, are ranked without "
        "SQL: per hour an array of 4 bytes per ad (clicks_1h) and each filtered rollup "
        "summed per hour (12 bytes per row). 0: such windows are answered by SQL.",
    )
    api_standard_windows: list[int] = Field(
        default_factory=lambda: [1, 5, 15, 60],
        description="Windows (minutes) whose unfiltered top lists the API ranks ahead of "
        "queries, after every refresh.",
    )
    api_refresh_interval_s: float = Field(
        2.0,
        gt=0,
        le=3_600,
        description="How often the API's window index looks for changed minutes.",
    )
    # Live subscriptions (topAdsLive): how many, and how far behind a client may fall.
    api_max_subscriptions_per_connection: int = Field(
        16,
        ge=1,
        le=10_000,
        description="Most subscriptions one WebSocket connection may hold at once; one "
        "more is refused with TOO_MANY_SUBSCRIPTIONS.",
    )
    api_max_subscriptions: int = Field(
        1_000,
        ge=1,
        le=1_000_000,
        description="Most subscriptions an API process holds at once (each worker, with "
        "ADCLICK_API_WORKERS above 1); one more is refused with TOO_MANY_SUBSCRIPTIONS.",
    )
    api_subscription_backlog_lists: int = Field(
        64,
        ge=1,
        le=100_000,
        description="Most published lists a subscription holds for a client that has not "
        "read them yet (only lists of its window and filter count). A client further "
        "behind is sent those, then its subscription ends with SUBSCRIPTION_TOO_SLOW.",
    )

    @field_validator("close_windows")
    @classmethod
    def _check_close_windows(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= w <= _LONGEST_WINDOW_MINUTES for w in value):
            raise ValueError(
                f"give at least one window, each 1 to {_LONGEST_WINDOW_MINUTES} minutes"
            )
        return sorted(set(value))

    @field_validator("api_cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port] with no path, or *"
                )
        return value

    @field_validator("api_standard_windows")
    @classmethod
    def _check_standard_windows(cls, value: list[int]) -> list[int]:
        if any(not 1 <= w <= _LONGEST_WINDOW_MINUTES for w in value):
            raise ValueError(f"each window must be 1 to {_LONGEST_WINDOW_MINUTES} minutes")
        return sorted(set(value))

    @field_validator("query_dimensions")
    @classmethod
    def _check_query_dimensions(cls, value: list[str]) -> list[str]:
        for dim in value:
            if not _IDENTIFIER.match(dim):
                raise ValueError(f"dimension {dim!r} must match {_IDENTIFIER.pattern}")
        return sorted(set(value))

    @field_validator("dimension_sets")
    @classmethod
    def _check_dimension_sets(cls, value: list[list[str]]) -> list[list[str]]:
        seen: set[tuple[str, ...]] = set()
        for dims in value:
            if not dims:
                raise ValueError("a dimension set must name at least one dimension")
            for dim in dims:
                if not _IDENTIFIER.match(dim):
                    raise ValueError(f"dimension {dim!r} must match {_IDENTIFIER.pattern}")
                if dim in _ROLLUP_COLUMNS:
                    raise ValueError(
                        f"dimension {dim!r} is a column of every rollup; name the attribute "
                        "otherwise"
                    )
            key = tuple(sorted(set(dims)))
            if rollup_key_bytes(dims) > _BTREE_ENTRY_BYTES:
                raise ValueError(
                    f"dimension set {dims} is too wide: a click with long values in each "
                    f"(128 characters) would make a key over the {_BTREE_ENTRY_BYTES} bytes "
                    "PostgreSQL's index entries hold; at most 4 dimensions besides country"
                )
            if len(key) != len(dims):
                raise ValueError(f"dimension set {dims} repeats a dimension")
            if key in seen:
                raise ValueError(f"dimension set {dims} is declared twice")
            seen.add(key)
        # Each set is a table of its own: two sets of one name (["a_b"] and ["a", "b"])
        # would write each other's table, and PostgreSQL cuts longer names (and so
        # makes them equal) without an error.
        tables: dict[str, list[str]] = {}
        for dims in value:
            table = rollup_table_name(sorted(dims))
            if len(f"{table}{ROLLUP_BRIN_SUFFIX}".encode()) > _MAX_NAME_BYTES:
                raise ValueError(
                    f"dimension set {dims} makes the table name {table!r}, too long for "
                    f"PostgreSQL (at most {_MAX_NAME_BYTES - len(ROLLUP_BRIN_SUFFIX)} "
                    "characters): use shorter or fewer dimensions"
                )
            if table in tables:
                raise ValueError(
                    f"dimension sets {tables[table]} and {dims} would both be the table "
                    f"{table!r}: rename a dimension"
                )
            tables[table] = dims
        return [sorted(dims) for dims in value]

    @model_validator(mode="after")
    def _check_topics(self) -> Settings:
        names = [self.clicks_topic, self.dlq_topic, self.top_ads_topic]
        if len(set(names)) != len(names):
            raise ValueError("clicks_topic, dlq_topic and top_ads_topic must differ")
        if self.allowed_lateness > self.dedup_horizon:
            raise ValueError("allowed_lateness must not be longer than dedup_horizon")
        return self

    @model_validator(mode="after")
    def _check_shards(self) -> Settings:
        if not self.shards:
            return self
        owned = [p for shard in self.shards for p in shard.partitions]
        if sorted(owned) != list(range(self.topic_partitions)):
            raise ValueError(
                "shards: the partitions of all shards must be 0 .. "
                f"{self.topic_partitions - 1} (ADCLICK_TOPIC_PARTITIONS), each exactly once; "
                f"they are {sorted(owned)}"
            )
        # A first hint, from the URLs' text as libpq reads it; every process that uses
        # the shards asks the servers themselves at its start (adclick.db.identity).
        locations = [shard_location(shard.url) for shard in self.shards]
        if len(set(locations)) != len(locations):
            raise ValueError("shards: two shards name the same database")
        if self.database_read_url is not None:
            raise ValueError(
                "with shards, each shard names its own standby (read_url); "
                "ADCLICK_DATABASE_READ_URL must be unset"
            )
        return self

    @property
    def filter_dimensions(self) -> list[str]:
        """Every dimension a query filter may name: the query dimensions and the rollups'."""
        return sorted({*self.query_dimensions, *(d for ds in self.dimension_sets for d in ds)})

    def for_process(self, kind: ProcessKind) -> Settings:
        """These settings with the database URL of a process kind in ADCLICK_DATABASE_URL.

        Every connection a process opens goes through ``database_url``; a process picks
        its role by calling this once at its start.
        """
        url = getattr(self, f"{kind.value}_database_url")
        return self if url is None else self.model_copy(update={"database_url": url})

    def for_reads(self) -> Settings:
        """These settings with ADCLICK_DATABASE_READ_URL (when set) in ``database_url``:
        where the API's queries and indexes read."""
        url = self.database_read_url
        return self if url is None else self.model_copy(update={"database_url": url})

    @property
    def cold_storage_base(self) -> str:
        """ADCLICK_COLD_STORAGE_URL, or ``<state dir>/cold``; never with a trailing slash."""
        url = self.cold_storage_url or str((self.state_dir / "cold").resolve())
        return url.rstrip("/")

    def shard_settings(self) -> list[Settings]:
        """One copy of these settings per shard, whose ``database_url`` (and read URL) is
        that shard's, with this process's credentials; ``[self]`` without shards."""
        if not self.shards:
            return [self]
        return [self._at_shard(shard) for shard in self.shards]

    def _at_shard(self, shard: Shard) -> Settings:
        at_shard = self.model_copy(
            update={
                "database_url": at_location(self.database_url, shard.url),
                "database_read_url": None
                if shard.read_url is None
                else at_location(self.database_url, shard.read_url),
                "shards": [],
            }
        )
        at_shard._one_shard = True
        return at_shard

    @property
    def one_shard(self) -> bool:
        """Whether these are one shard's settings (made by ``shard_settings``)."""
        return self._one_shard

    def shard_cold_directory(self, database_name: str) -> str:
        """Where this database's new cold files go: ``cold_storage_base``, or with shards
        ``<base>/<database_name>``, named by what the server says the database is
        (adclick.db.identity) rather than by its place in ADCLICK_SHARDS, which an
        operator may reorder: files of equal chunk ranges of two shards never meet."""
        if not self._one_shard:
            return self.cold_storage_base
        return f"{self.cold_storage_base}/{database_name}"

    def every_database(self) -> list[Settings]:
        """Every shard's database, and ADCLICK_DATABASE_URL's when it is none of them:
        what ``migrate``, ``maintain`` and retention changes run on."""
        if not self.shards:
            return [self]
        shards = self.shard_settings()
        home = shard_location(self.database_url)
        if any(shard_location(s.database_url) == home for s in shards):
            return shards
        return [*shards, self]

    def describe_database(self) -> str:
        """host:port/database of ``database_url``, for messages (no user, no password)."""
        try:
            host, port, name = shard_location(self.database_url)
        except ValueError:
            return "the database"  # a URL only libpq reads: it says what is wrong with it
        return f"{host or '(Unix socket)'}:{port}/{name}"

    def shard_of(self, partition: int) -> int:
        """The index in ``shard_settings()`` of the shard that owns a clicks partition."""
        for index, shard in enumerate(self.shards):
            if partition in shard.partitions:
                return index
        if not self.shards:
            return 0
        raise ConfigurationError(
            f"partition {partition} of {self.clicks_topic} belongs to no shard: the topic "
            f"has more partitions than ADCLICK_TOPIC_PARTITIONS ({self.topic_partitions}) "
            "and ADCLICK_SHARDS cover"
        )

    @property
    def passfile(self) -> Path | None:
        """The password file libpq is given: ADCLICK_DATABASE_PASSFILE or the local stack's."""
        if self.database_passfile is not None:
            return self.database_passfile
        local = self.state_dir / "secrets" / "pgpass"
        return local.resolve() if local.is_file() else None

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in SQLAlchemy's form, with the psycopg 3 driver."""
        url = self.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    def kafka_client_config(
        self, defaults: Mapping[str, Any] | None = None, /, **required: Any
    ) -> dict[str, Any]:
        """librdkafka configuration of a client: adclick's ``defaults`` (tuning), then the
        operator's ADCLICK_KAFKA_CONFIG, which wins over them, then what adclick
        ``required`` for correctness (offsets kept in the database, a group of its own),
        which the operator's may not contradict: a clash is refused, never overwritten
        silently."""
        clashes = sorted(
            key
            for key, value in required.items()
            if key in self.kafka_config
            and _kafka_text(self.kafka_config[key]) != _kafka_text(value)
        )
        if clashes:
            raise ConfigurationError(
                f"ADCLICK_KAFKA_CONFIG sets {', '.join(clashes)}, which adclick sets itself "
                f"for this client ({', '.join(f'{k}={required[k]!r}' for k in clashes)}): "
                "remove them from ADCLICK_KAFKA_CONFIG"
            )
        config: dict[str, Any] = {"bootstrap.servers": self.kafka_bootstrap_servers}
        config.update(defaults or {})
        config.update(self.kafka_config)
        config.update(required)
        return config

    def as_environment(self) -> dict[str, str]:
        """The settings as ``ADCLICK_*`` variables, e.g. for a worker process or a container."""
        environment = {}
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                continue  # unset is how a variable says None
            text = value if isinstance(value, str) else json.dumps(value)
            environment[f"ADCLICK_{name.upper()}"] = text
        return environment

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("ADCLICK_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def invalid_configuration(error: ValidationError) -> ConfigurationError:
    """One line per problem, named by its variable.

    The rejected input is left out: it may be a secret (a password inside
    ADCLICK_KAFKA_CONFIG).
    """
    problems = []
    for item in error.errors():
        location = item["loc"]
        name = f"ADCLICK_{str(location[0]).upper()}" if location else "settings"
        problems.append(f"{name}: {item['msg']}")
    return ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once; invalid ones raise ConfigurationError."""
    return load_settings()


def load_settings() -> Settings:
    """Settings read afresh from the environment (and ADCLICK_CONFIG_FILE).

    Every way they can be wrong -- a value out of range, JSON that does not parse, a
    configuration file that is not TOML -- raises ConfigurationError with a message that
    names the setting and leaves the value out (it may be a secret).
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise invalid_configuration(exc) from None
    except SettingsError as exc:
        # pydantic-settings' own message names the field, never the value.
        raise ConfigurationError(f"invalid configuration: {exc}") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"invalid configuration: ADCLICK_CONFIG_FILE cannot be read as TOML: {exc}"
        ) from None


def _kafka_text(value: Any) -> str:
    """A librdkafka property as librdkafka reads it (True and "true" are one value)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


# libpq parameters that say where a database is (or who connects): a shard's URL says
# them itself; the home URL's never carry over to it (docs/operations.md, Shards).
_LOCATION_PARAMS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "service",
        "servicefile",
        "user",
        "password",
        "target_session_attrs",
        "load_balance_hosts",
        "requirepeer",
    }
)


def shard_location(url: str) -> tuple[str | None, int, str | None]:
    """(host, port, database) of a database URL as libpq reads it (``?host=`` and
    ``?hostaddr=`` included, host names in lower case): a first hint that two URLs name
    one database. Only the servers can tell for sure (adclick.db.identity asks them at
    every process's start): ``localhost`` and ``127.0.0.1`` differ here."""
    params = _conninfo(url)
    host = params.get("hostaddr") or params.get("host") or None
    port = params.get("port") or "5432"
    if not port.isdigit():
        raise ValueError(f"not a database URL: port {port!r} is not one number")
    database = params.get("dbname") or params.get("user") or None
    return (host.lower() if host else None), int(port), database


def _conninfo(url: str) -> dict[str, str]:
    """The URL's libpq parameters (only those it names), or ValueError."""
    from psycopg import ProgrammingError  # imported when needed: settings load early
    from psycopg.conninfo import conninfo_to_dict

    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("not a database URL: it must start with postgresql://")
    try:
        return {key: str(value) for key, value in conninfo_to_dict(url).items()}
    except ProgrammingError as exc:
        raise ValueError(f"not a database URL: {exc}") from None


def _parse_url(url: str) -> URL:
    from sqlalchemy.engine import make_url  # imported when needed: it is slow to import
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"not a database URL: {exc}") from None


def at_location(credentials_url: str, location_url: str) -> str:
    """``location_url``'s database with the user and password of ``credentials_url``
    unless ``location_url`` names a user of its own.

    Where the database is (host, hostaddr, port, name, service: ``_LOCATION_PARAMS``) is
    ``location_url``'s alone: a home URL reaching its database by ``?host=`` (a Unix
    socket) or ``?port=`` must not send every shard there. The home's other options
    (sslmode, passfile, options, ...) carry over unless the shard's URL sets them too.
    """
    location = _parse_url(location_url)
    own = _conninfo(location_url)
    try:
        credentials = _conninfo(credentials_url)
    except ValueError:
        credentials = {}  # connecting with it reports the bad URL
    if "user" not in own:
        location = location.set(
            username=credentials.get("user"), password=credentials.get("password")
        )
    carried = {
        key: value
        for key, value in credentials.items()
        if key not in _LOCATION_PARAMS and key not in own
    }
    return location.set(query={**carried, **location.query}).render_as_string(hide_password=False)
