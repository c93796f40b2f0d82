"""Answers read by SQL: the adClicks and topAds the window index cannot serve.

Every value is a bound parameter; only identifiers from configuration (rollup tables,
dimension names) are composed into the statements, quoted by psycopg.sql.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from psycopg import sql

from adclick.db.connect import Connection
from adclick.db.rollups import raw_dimension
from adclick.query.filters import Filter, Plan, Source
from adclick.query.ranking import RankedAd
from adclick.query.window import HOUR_MS, Window, from_ms
from adclick.resources import load_sql


def _relation(plan: Plan) -> tuple[sql.Composable, sql.Composable, sql.Composable]:
    """The table, its time column and the click measure of a plan's source."""
    if plan.source is Source.RAW:
        return sql.Identifier("raw_clicks"), sql.Identifier("ts"), sql.SQL("count(*)")
    table = "clicks_1m" if plan.rollup is None else plan.rollup.table
    return sql.Identifier(table), sql.Identifier("minute"), sql.SQL("sum(clicks)")


def _conditions(plan: Plan, query_filter: Filter) -> tuple[sql.Composable, dict[str, object]]:
    """``AND dim = ANY(%(f0)s) ...`` for the filter, and its parameters."""
    parts: list[sql.Composable] = []
    params: dict[str, object] = {}
    for i, (dim, values) in enumerate(query_filter.conditions):
        column = raw_dimension(dim) if plan.source is Source.RAW else sql.Identifier(dim)
        parts.append(sql.SQL(" AND {} = ANY({})").format(column, sql.Placeholder(f"f{i}")))
        params[f"f{i}"] = list(values)
    return sql.Composed(parts), params


Statement = tuple[sql.SQL | sql.Composed, dict[str, object]]


def ads_series_statement(
    ad_ids: list[str], window: Window, plan: Plan, query_filter: Filter, bucket_ms: int
) -> Statement:
    """The statement of ``ads_series`` and its parameters (``python -m bench day`` explains it)."""
    hours = _whole_hours(window)
    if plan.source is Source.ROLLUP and bucket_ms == HOUR_MS and hours:
        return sql.SQL(load_sql("query/ads_hours")), {
            "ads": ad_ids,
            "hours": [from_ms(h) for h in hours],
            "hours_start": from_ms(hours.start),
            "hours_end": from_ms(hours[-1] + HOUR_MS),
            "start": from_ms(window.start_ms),
            "end": from_ms(window.end_ms),
        }
    table, time_column, measure = _relation(plan)
    conditions, params = _conditions(plan, query_filter)
    statement = sql.SQL(
        "SELECT ad_id, (extract(epoch FROM time_bucket(%(bucket)s, {time})) * 1000)::bigint, "
        "{measure}::bigint FROM {table} "
        "WHERE ad_id = ANY(%(ads)s) AND {time} >= %(start)s AND {time} < %(end)s{conditions} "
        "GROUP BY 1, 2"
    ).format(time=time_column, measure=measure, table=table, conditions=conditions)
    params |= {
        "bucket": timedelta(milliseconds=bucket_ms),
        "ads": ad_ids,
        "start": from_ms(window.start_ms),
        "end": from_ms(window.end_ms),
    }
    return statement, params


def ads_series(
    conns: Sequence[Connection],
    ad_ids: list[str],
    window: Window,
    plan: Plan,
    query_filter: Filter,
    bucket_ms: int,
) -> dict[tuple[str, int], int]:
    """Clicks per (ad, bucket start in epoch ms) over the window; buckets without clicks
    are absent."""
    statement, params = ads_series_statement(ad_ids, window, plan, query_filter, bucket_ms)
    counts: dict[tuple[str, int], int] = {}
    for conn in conns:  # every shard: an ad's rows are in the one owning its partition
        for ad_id, start, clicks in conn.execute(statement, params):
            key = (str(ad_id), int(start))
            counts[key] = counts.get(key, 0) + int(clicks)
    return counts


def _whole_hours(window: Window) -> range:
    """The hours wholly inside the window (epoch ms of their starts)."""
    return range(-(-window.start_ms // HOUR_MS) * HOUR_MS, window.end_ms - HOUR_MS + 1, HOUR_MS)


def ads_clicks_between(
    conns: Sequence[Connection],
    ad_ids: list[str],
    window: Window,
    plan: Plan,
    query_filter: Filter,
) -> list[tuple[str, int]]:
    """Clicks of the given ads over the window, by primary-key range scans (one per ad and
    chunk), from every shard (an ad's rows are all in one)."""
    statement, params = ads_clicks_between_statement(ad_ids, window, plan, query_filter)
    return [
        (str(ad), int(clicks)) for conn in conns for ad, clicks in conn.execute(statement, params)
    ]


def ads_clicks_between_statement(
    ad_ids: list[str], window: Window, plan: Plan, query_filter: Filter
) -> Statement:
    """The statement of ``ads_clicks_between`` and its parameters."""
    table, time_column, measure = _relation(plan)
    conditions, params = _conditions(plan, query_filter)
    statement = sql.SQL(
        "SELECT ad_id, {measure}::bigint FROM {table} WHERE ad_id = ANY(%(ads)s) "
        "AND {time} >= %(start)s AND {time} < %(end)s{conditions} GROUP BY ad_id"
    ).format(time=time_column, measure=measure, table=table, conditions=conditions)
    params |= {"ads": ad_ids, "start": from_ms(window.start_ms), "end": from_ms(window.end_ms)}
    return statement, params


def top_ads_statement(window: Window, plan: Plan, query_filter: Filter, limit: int) -> Statement:
    """The statement of ``top_ads`` and its parameters (``python -m bench day`` explains it)."""
    params: dict[str, object] = {
        "start": from_ms(window.start_ms),
        "end": from_ms(window.end_ms),
        "limit": limit,
    }
    if plan.source is Source.ROLLUP:
        first_hour = -(-window.start_ms // HOUR_MS) * HOUR_MS
        last_hour = window.end_ms - window.end_ms % HOUR_MS
        if first_hour >= last_hour:  # no whole hour inside: all minutes
            first_hour = last_hour = window.end_ms
        params |= {"hours_start": from_ms(first_hour), "hours_end": from_ms(last_hour)}
        return sql.SQL(load_sql("query/top_ads_by_hours")), params
    table, time_column, measure = _relation(plan)
    conditions, filter_params = _conditions(plan, query_filter)
    statement = sql.SQL(
        "SELECT ad_id, {measure}::bigint AS clicks FROM {table} "
        "WHERE {time} >= %(start)s AND {time} < %(end)s{conditions} "
        "GROUP BY ad_id ORDER BY clicks DESC, ad_id LIMIT %(limit)s"
    ).format(time=time_column, measure=measure, table=table, conditions=conditions)
    return statement, params | filter_params


def top_ads(
    conns: Sequence[Connection], window: Window, plan: Plan, query_filter: Filter, limit: int
) -> list[RankedAd]:
    """The window's top ``limit`` by SQL; unfiltered windows read whole hours hourly.

    Each shard's exact top ``limit`` (its ads are in no other shard), merged: any ad of
    the global top ``limit`` is in its shard's. Ties rank by ad id, in the "C" collation
    the SQL orders by, which is Python's order of strings.
    """
    statement, params = top_ads_statement(window, plan, query_filter, limit)
    rows = [
        (str(ad), int(clicks)) for conn in conns for ad, clicks in conn.execute(statement, params)
    ]
    if len(conns) > 1:
        rows = sorted(rows, key=lambda row: (-row[1], row[0]))[:limit]
    return [RankedAd(rank, ad, clicks) for rank, (ad, clicks) in enumerate(rows, start=1)]
