"""ADCLICK_KAFKA_CONFIG wins over adclick's tuning, and may not contradict what adclick
needs for correctness: such a clash is refused at start, naming the property."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer
from hypothesis import given
from hypothesis import strategies as st

from adclick.errors import ConfigurationError
from adclick.kafka.clients import (
    consumer_config,
    incremental_rebalancing,
    member_config,
    producer_config,
)
from adclick.settings import Settings

OPERATOR = {
    "linger.ms": "100",
    "acks": "1",
    "fetch.max.bytes": "1000",
    "session.timeout.ms": "9000",
}


def test_the_operators_tuning_wins_over_adclicks() -> None:
    settings = Settings(kafka_config=OPERATOR)
    producer = producer_config(settings, {"linger.ms": 5})
    consumer = consumer_config(settings, **{"client.id": "worker-1"})
    for key in ("linger.ms", "acks"):
        assert producer[key] == OPERATOR[key]
    for key in ("fetch.max.bytes", "session.timeout.ms"):
        assert consumer[key] == OPERATOR[key]
    # What correctness needs stays adclick's.
    assert consumer["enable.auto.commit"] is False and consumer["client.id"] == "worker-1"
    assert consumer["group.id"] == settings.consumer_group


@pytest.mark.parametrize(
    ("operator", "clash"),
    [
        ({"enable.auto.commit": "true"}, "enable.auto.commit"),
        ({"auto.offset.reset": "latest"}, "auto.offset.reset"),
        ({"group.id": "mine", "linger.ms": "1"}, "group.id"),
    ],
)
def test_a_clash_with_what_adclick_needs_is_refused_by_name(
    operator: dict[str, str], clash: str
) -> None:
    with pytest.raises(ConfigurationError, match=clash):
        consumer_config(Settings(kafka_config=operator))


def test_agreeing_with_what_adclick_needs_is_no_clash() -> None:
    config = consumer_config(Settings(kafka_config={"enable.auto.commit": "false"}))
    assert config["enable.auto.commit"] is False


@pytest.mark.parametrize(
    ("operator", "incremental"),
    [
        ({}, False),
        ({"partition.assignment.strategy": "range"}, False),
        ({"partition.assignment.strategy": "cooperative-sticky"}, True),
        ({"group.protocol": "consumer"}, True),
        ({"group.protocol": "classic"}, False),
    ],
)
def test_the_worker_knows_whether_rebalances_are_incremental(
    operator: dict[str, str], incremental: bool
) -> None:
    # tests/integration/test_rebalance.py runs workers of both kinds of group.
    config = consumer_config(Settings(kafka_config=operator))
    assert incremental_rebalancing(config) is incremental
    Consumer(config).close()  # librdkafka accepts the combination (no broker needed)


def test_each_worker_process_is_its_own_static_member() -> None:
    static = Settings(kafka_config={"group.instance.id": "host-7"})
    configs = [member_config(static, f"worker-{n}") for n in range(2)]
    assert [c["group.instance.id"] for c in configs] == ["host-7-worker-0", "host-7-worker-1"]
    assert [c["client.id"] for c in configs] == ["adclick-worker-0", "adclick-worker-1"]
    assert "group.instance.id" not in member_config(Settings(), "worker-0")


keys = st.sampled_from(
    ["linger.ms", "acks", "group.id", "enable.auto.commit", "auto.offset.reset", "x.y"]
) | st.text(min_size=1, max_size=20)


@given(st.dictionaries(keys, st.text(max_size=10), max_size=6))
def test_any_operator_config_is_applied_whole_or_refused(operator: dict[str, str]) -> None:
    settings = Settings(kafka_config=operator)
    try:
        config: dict[str, Any] = consumer_config(settings)
    except ConfigurationError:
        return
    required = {"group.id", "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset"}
    for key, value in operator.items():
        if key not in required:
            assert config[key] == value
    assert config["enable.auto.commit"] is False and config["enable.auto.offset.store"] is False
