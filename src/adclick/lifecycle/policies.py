"""Retention policies: rows of retention_policies, administered by CLI, GraphQL and SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import TypeAdapter, ValidationError

from adclick.db.connect import Connection
from adclick.errors import AdclickError
from adclick.resources import load_sql
from adclick.settings import Settings

FOREVER = ("forever", "none", "null")
_DURATION = TypeAdapter(timedelta)


class PolicyError(AdclickError):
    """A policy change that is not allowed; the message says why."""


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
            f"{text!r} is not a duration: give ISO 8601 (P7D, P90D, PT12H) or 'forever'"
        ) from None
    if value < timedelta(0):
        raise PolicyError(f"{text!r} is negative")
    return value


def iso_duration(value: timedelta) -> str:
    """ISO 8601 in days and time (P400D, PT12H): unambiguous, unlike years and months."""
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
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


def load_policies(conn: Connection) -> list[Policy]:
    return [Policy(*row) for row in conn.execute(load_sql("lifecycle/policies")).fetchall()]


def set_policy(
    conn: Connection,
    settings: Settings,
    relation: str,
    hot: timedelta | None,
    cold: timedelta | None,
    by: str,
) -> Policy:
    """Change a relation's policy; refuses what would break exactness."""
    known = {p.relation: p for p in load_policies(conn)}
    if relation not in known:
        raise PolicyError(f"no policy for {relation!r}; relations: {', '.join(sorted(known))}")
    if hot is not None and hot <= timedelta(0):
        raise PolicyError("hot retention must be positive (or forever)")
    if relation == "raw_clicks" and hot is not None and hot < settings.dedup_horizon:
        # Duplicates are found in hot raw clicks only: a shorter hot time would let a
        # duplicate within the horizon be counted twice.
        raise PolicyError(
            f"raw_clicks must stay hot at least the dedup horizon "
            f"({describe(settings.dedup_horizon)}, ADCLICK_DEDUP_HORIZON)"
        )
    conn.execute(
        load_sql("lifecycle/set_policy"),
        {"relation": relation, "hot": hot, "cold": cold, "by": by},
    )
    conn.commit()
    return {p.relation: p for p in load_policies(conn)}[relation]
