"""Microseconds per click to parse and validate loadgen JSON clicks, on both paths.

    uv run python -m bench.parse_click [--events 20000]

``parse_json_event`` decodes a plain click with msgspec; ``event_from_dict(orjson.loads())``
is the general path every other click takes. Best of seven passes over the same clicks.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import orjson

from adclick.events.parse import event_from_dict, parse_json_event
from adclick.loadgen.generator import LoadSpec, generate
from bench.environment import this_machine


def _best_us(parse: Callable[[bytes], object], payloads: list[bytes]) -> float:
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for payload in payloads:
            parse(payload)
        best = min(best, time.perf_counter() - started)
    return round(1e6 * best / len(payloads), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    spec = LoadSpec(events=args.events, start_ms=1_720_483_200_000, seed=1)
    payloads = [p for block in generate(spec) for p in block.payloads]
    result = {
        "events": len(payloads),
        "machine": this_machine().describe(),
        "plain_path_us": _best_us(parse_json_event, payloads),
        "general_path_us": _best_us(lambda p: event_from_dict(orjson.loads(p)), payloads),
        "orjson_loads_alone_us": _best_us(orjson.loads, payloads),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
