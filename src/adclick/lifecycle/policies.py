"""Retention policies: rows of retention_policies, administered by CLI, GraphQL and SQL."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import TypeAdapter, ValidationError

from adclick.db.connect import Connection
from adclick.errors import AdclickError
from adclick.resources import load_sql
from adclick.settings import Settings

FOREVER = ("forever", "none", "null")
# Longer is surely a typo, and would overflow date arithmetic (P999999999D did); "forever"
# is the way to keep data for good.
MAX_RETENTION = timedelta(days=36_525)
_MICROSECOND = timedelta(microseconds=1)
_DURATION = TypeAdapter(timedelta)

log = logging.getLogger(__name__)


class PolicyError(AdclickError):
    """A policy that is not allowed (code BAD_POLICY); the message says why.

    ``forceable``: an operator may knowingly set it anyway (``adclick retention set --force``).
    """

    def __init__(self, message: str, *, forceable: bool = False) -> None:
        super().__init__(message)
        self.forceable = forceable


@dataclass(frozen=True)
class Policy:
    """How long a relation stays hot (in the database) and then cold (Parquet files).

    None is forever; cold 0 means the data is dropped without being exported.
    """

    relation: str
    hot: timedelta | None
    cold: timedelta | None
    updated_at: datetime | None = None
    updated_by: str = ""


def parse_retention(text: str) -> timedelta | None:
    """An ISO-8601 duration (P7D, PT12H), HH:MM:SS, or "forever"."""
    if text.strip().lower() in FOREVER:
        return None
    try:
        value = _DURATION.validate_python(text.strip())
    except ValidationError:
        raise PolicyError(
            f"{text[:100]!r} is not a duration: give ISO 8601 (P7D, P90D, PT12H) or 'forever'"
        ) from None
    if value < timedelta(0):
        raise PolicyError(f"{text[:100]!r} is negative")
    return value


def iso_duration(value: timedelta) -> str:
    """ISO 8601 in days and time (P400D, PT12H): unambiguous, unlike years and months."""
    hours, rest = divmod(value.seconds, 3600)
    minutes, whole = divmod(rest, 60)
    seconds = f"{whole}.{value.microseconds:06d}".rstrip("0") if value.microseconds else whole
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    days = f"{value.days}D" if value.days or not time else ""
    return f"P{days}" + (f"T{time}" if time else "")


def describe(value: timedelta | None) -> str:
    if value is None:
        return "forever"
    if value == timedelta(0):
        return "0 (not kept)"
    if value % timedelta(days=1) == timedelta(0):
        return f"{value.days} days"
    return str(value)


def stored_policies(conn: Connection) -> list[Policy]:
    """Every policy as stored, valid or not (a duration beyond timedelta's range reads as
    ``timedelta.max``, which check_policy refuses)."""
    return [
        Policy(relation, _seconds(hot), _seconds(cold), updated_at, updated_by)
        for relation, hot, cold, updated_at, updated_by in conn.execute(
            load_sql("lifecycle/policies")
        ).fetchall()
    ]


def load_policies(conn: Connection) -> list[Policy]:
    """The policies as maintenance applies them (adclick maintain, recalculation's range).

    Each stored policy goes through check_policy's rules that hold whatever the settings
    (bounds and signs; SQL is the operators' way past the others). One that fails them
    (stored by hand, e.g. P999999999D, whose arithmetic overflows) is logged as an error
    and applied as hot and cold forever: its relation is left alone until an operator fixes
    it, and every other relation is maintained as usual.
    """
    policies = []
    for policy in stored_policies(conn):
        try:
            check_policy(policy.relation, policy.hot, policy.cold)
        except PolicyError as exc:
            log.error(
                "retention policy of %s is not valid (%s): it is left alone until fixed "
                "with adclick retention set",
                policy.relation,
                exc,
            )
            policy = replace(policy, hot=None, cold=None)
        policies.append(policy)
    return policies


def check_policy(
    relation: str,
    hot: timedelta | None,
    cold: timedelta | None,
    settings: Settings | None = None,
    *,
    relations: Collection[str] | None = None,
    force: bool = False,
) -> None:
    """The one check of a retention policy, for the CLI, the API and maintenance.

    Raises PolicyError saying why. Without ``settings`` only the rules that hold whatever
    the configuration are checked (durations within 0..100 years, hot not 0); with them,
    also those that keep answers exact (docs/lifecycle.md). ``force`` lets through the
    rules an operator may knowingly break (PolicyError.forceable), never the others.
    """
    if relations is not None and relation not in relations:
        raise PolicyError(
            f"no policy for {relation[:200]!r}; relations: {', '.join(sorted(relations))}"
        )
    for name, value in (("hot", hot), ("cold", cold)):
        if value is not None and value > MAX_RETENTION:
            raise PolicyError(
                f"{name} {describe(value)} is more than {describe(MAX_RETENTION)} "
                "(100 years); give 'forever' to keep the data for good"
            )
        if value is not None and value < timedelta(0):
            raise PolicyError(f"{name} must not be negative")
    if hot is not None and hot == timedelta(0):
        raise PolicyError("hot retention must be positive (or forever)")
    if settings is None:
        return
    if relation == "raw_clicks" and hot is not None and hot < settings.dedup_horizon:
        # Duplicates are found in hot raw clicks only: a shorter hot time would let a
        # duplicate within the horizon be counted twice.
        raise PolicyError(
            f"raw_clicks must stay hot at least the dedup horizon "
            f"({describe(settings.dedup_horizon)}, ADCLICK_DEDUP_HORIZON): a duplicate "
            "older than its hot time would be counted twice"
        )
    if _answers_windows(relation) and hot is not None and hot < settings.minute_rollup_retention:
        # The API accepts windows that far back and reads them from these rollups only.
        raise PolicyError(
            f"{relation} must stay hot at least {describe(settings.minute_rollup_retention)} "
            "(ADCLICK_MINUTE_ROLLUP_RETENTION): the API answers windows that start that far "
            "back from it, and would answer them short; lower that setting first"
        )
    if relation == "top_ads" and hot is not None and hot < settings.close_revision_horizon:
        # The closer revises stored lists within the horizon and publishes stored ones on
        # recovery: a list deleted under it was published again empty, or as new.
        raise PolicyError(
            f"top_ads must stay hot at least the closer's revision horizon "
            f"({describe(settings.close_revision_horizon)}, ADCLICK_CLOSE_REVISION_HORIZON): "
            "the closer still revises and recovers lists that recent"
        )
    if relation == "clicks_1h" and hot is not None and cold == timedelta(0) and not force:
        raise PolicyError(
            "clicks_1h cold 0 drops the hourly counts without exporting them, and they are "
            "the only long-term data (billing history): keep them cold for a time or "
            "forever, or use adclick retention set --force if that is really meant",
            forceable=True,
        )


def _answers_windows(relation: str) -> bool:
    """The rollups the API answers any window within the minute-rollup retention from."""
    return relation in ("clicks_1m", "clicks_1h") or relation.startswith("clicks_1m_by_")


def _seconds(value: Decimal | None) -> timedelta | None:
    """A duration read as seconds, clamped to timedelta's range (PostgreSQL's is wider)."""
    if value is None:
        return None
    micros = int(value * 1_000_000)
    bound = timedelta.max // _MICROSECOND
    if abs(micros) > bound:
        return timedelta.max if micros > 0 else -timedelta.max
    return micros * _MICROSECOND


def set_policy(
    conn: Connection,
    settings: Settings,
    relation: str,
    hot: timedelta | None,
    cold: timedelta | None,
    by: str,
    *,
    force: bool = False,
) -> Policy:
    """Change a relation's policy after check_policy; ``force`` as there."""
    known = {p.relation for p in stored_policies(conn)}
    check_policy(relation, hot, cold, settings, relations=known, force=force)
    conn.execute(
        load_sql("lifecycle/set_policy"),
        {"relation": relation, "hot": hot, "cold": cold, "by": by},
    )
    conn.commit()
    return {p.relation: p for p in stored_policies(conn)}[relation]
