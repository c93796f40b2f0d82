"""How long a batch's rollup deltas take to reach the server as array parameters.

    uv run python -m bench.array_params [--elements 50000] [--repeat 5]

Sends four arrays (minute, ad, country, clicks) of loadgen-like values to the local
stack's database three ways and prints seconds per batch, client and server together:
psycopg's list dumper in text and binary format, and the literals of
adclick.db.array_literal. The server only unnests and counts, so what differs is the
encoding. Also prints what sorting the deltas by key in Python costs, which the worker
did before the server took over the ordering.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

from adclick.db.array_literal import int_array_literal, text_array_literal
from adclick.db.connect import connect
from adclick.settings import Settings
from bench.environment import this_machine

_UNNEST = (
    "SELECT count(*) FROM unnest("
    "%(m)s::bigint[], %(a)s::text[], %(d)s::text[], %(c)s::bigint[]) AS t (m, a, d, c)"
)


def _columns(elements: int) -> dict[str, list[Any]]:
    rng = random.Random(7)
    minute = 1_720_483_200_000
    return {
        "m": [minute + 60_000 * rng.randrange(3) for _ in range(elements)],
        "a": [f"ad{rng.randrange(2_000_000):07d}" for _ in range(elements)],
        "d": [rng.choice(["US", "IN", "CN", "BR", "DE", "JP"]) for _ in range(elements)],
        "c": [1 + int(rng.paretovariate(2)) for _ in range(elements)],
    }


def _literals(columns: dict[str, list[Any]]) -> dict[str, str]:
    return {
        "m": int_array_literal(columns["m"]),
        "a": text_array_literal(columns["a"]),
        "d": text_array_literal(columns["d"]),
        "c": int_array_literal(columns["c"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    columns = _columns(args.elements)
    with connect(Settings()) as conn:
        ways: dict[str, Callable[[], object]] = {
            "psycopg_lists_text": lambda: conn.execute(_UNNEST, columns).fetchone(),
            "psycopg_lists_binary": lambda: conn.execute(_UNNEST, columns, binary=True).fetchone(),
            "array_literals": lambda: conn.execute(_UNNEST, _literals(columns)).fetchone(),
        }
        result: dict[str, Any] = {"elements": args.elements, "machine": this_machine().describe()}
        for name, send in ways.items():
            send()  # warm up
            started = time.perf_counter()
            for _ in range(args.repeat):
                send()
            result[f"{name}_s"] = round((time.perf_counter() - started) / args.repeat, 4)
    keys = list(zip(columns["m"], columns["a"], columns["d"], strict=True))
    started = time.perf_counter()
    for _ in range(args.repeat):
        sorted(keys)
    result["python_sort_s"] = round((time.perf_counter() - started) / args.repeat, 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
