"""A random mix of valid, invalid, duplicate, late and oversized messages through
``adclick ingest``: the rollups equal an independent truth and every bad message is in the
dead-letter topic, once, with its reason (issue 13).

Each example gets a fresh database and topics on the session's real stack. The truth is
computed here from how the messages were built, not by the parser under test.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adclick.settings import Settings
from tests.conftest import fresh_settings
from tests.helpers import ingest_process, read_topic, rollup_counts, send

pytestmark = pytest.mark.slow(seconds=40)  # started first (tests/conftest.py)


NOW_S = int(time.time()) // 60 * 60
HOUR_AGO_S = NOW_S - 3600


@dataclass(frozen=True)
class Valid:
    ad: str
    at_ms: int
    user: str

    def payload(self) -> bytes:
        return orjson.dumps(
            {
                "ad_id": self.ad,
                "timestamp": self.at_ms,
                "user_id": self.user,
                "ip": "207.148.22.22",
                "country": "DE",
            }
        )


def _with_ad_id(ad: str) -> bytes:
    return Valid("x", HOUR_AGO_S * 1000, "u").payload().replace(b'"x"', orjson.dumps(ad))


valid = st.builds(
    Valid,
    ad=st.sampled_from([f"ad{i}" for i in range(6)]),
    # Within the last hour, in any order: late clicks (behind their partition's newest) are
    # within the allowed lateness or not, both are counted.
    at_ms=st.integers(HOUR_AGO_S * 1000, (NOW_S - 60) * 1000),
    user=st.sampled_from(["u1", "u2", "u3"]),
)
# Bad messages, each certain to be refused by the rules of docs/events.md, with its reason.
invalid = st.one_of(
    st.binary(max_size=200).map(lambda b: (b"#" + b, "malformed")),  # never JSON
    st.binary(min_size=1, max_size=50).map(  # invalid UTF-8 inside a known field
        lambda b: (b'{"ad_id": "a\xff' + b.replace(b'"', b"") + b'", "timestamp": 1}', "malformed")
    ),
    st.sampled_from(["\x1b[2J", "a\x00b", "\u3000", "x" * 129, "a\x85"]).map(
        lambda ad: (_with_ad_id(ad), "invalid_field")
    ),
    st.integers(200_000, 900_000).map(lambda n: (b'{"ad_id": "' + b"\x01" * n, "malformed")),
)
messages = st.lists(
    st.one_of(valid, valid, valid, invalid, st.just("repeat")), min_size=1, max_size=40
)


@settings(max_examples=4, suppress_health_check=list(HealthCheck))
@given(messages)
def test_any_mix_of_messages_gives_the_truth_and_dead_letters_every_bad_one(
    stack_settings: Settings, mix: list[Valid | tuple[bytes, str] | str]
) -> None:
    sent: list[bytes] = []
    truth: Counter[tuple[str, int]] = Counter()
    seen: set[Valid] = set()
    bad: list[tuple[bytes, str]] = []
    for item in mix:
        if item == "repeat":  # a producer's retry of the last message, good or bad
            if not sent:
                continue
            payload = sent[-1]
            if bad and bad[-1][0] == payload:
                bad.append(bad[-1])  # a bad message sent twice is two dead letters
        elif isinstance(item, Valid):
            payload = item.payload()
            if item not in seen:  # the same fields are the same click (derived click_id)
                seen.add(item)
                truth[(item.ad, item.at_ms // 60_000 * 60)] += 1
        else:
            assert isinstance(item, tuple)
            payload, _reason = item
            bad.append(item)
        sent.append(payload)

    with fresh_settings(stack_settings) as test_settings:
        send(test_settings, list(sent), key=b"one-partition")
        worker = ingest_process(test_settings, "--exit-when-idle", "3")
        _out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()[-2000:]
        assert rollup_counts(test_settings) == dict(truth)
        letters = read_topic(test_settings, test_settings.dlq_topic, expected=len(bad))
        assert sorted((d["payload_sha256"], d["reason"]) for d in letters) == sorted(
            (hashlib.sha256(p).hexdigest(), reason) for p, reason in bad
        )
        assert all(len(orjson.dumps(d)) < 200_000 for d in letters)
