"""What the API concludes from a database's replication state, and where the local
replica listens."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adclick.db.replica import ReplicaState
from adclick.errors import ConfigurationError
from adclick.settings import Settings
from adclick.stack.replica import local_read_url, replica_port

lags = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(lag=lags, bound=st.floats(min_value=0.001, max_value=1e5))
def test_a_standby_is_a_problem_only_past_the_bound_or_when_not_receiving(
    lag: float, bound: float
) -> None:
    streaming = ReplicaState(standby=True, streaming=True, lag_s=lag).problem(bound)
    assert (streaming is None) == (lag <= bound)
    if streaming is not None:
        assert "ADCLICK_API_MAX_REPLICA_LAG_S" in streaming
    cut_off = ReplicaState(standby=True, streaming=False, lag_s=lag).problem(bound)
    assert cut_off is not None and "does not stream" in cut_off


@given(lag=lags, streaming=st.booleans())
def test_a_primary_is_never_a_replica_problem(lag: float, streaming: bool) -> None:
    assert ReplicaState(standby=False, streaming=streaming, lag_s=lag).problem(0.001) is None


def test_the_local_replica_listens_next_to_the_primary_or_where_the_read_url_says() -> None:
    base = Settings(database_url="postgresql://adclick@127.0.0.1:6000/adclick")
    assert replica_port(base) == 6001
    assert local_read_url(base) == "postgresql://adclick_api@127.0.0.1:6001/adclick"
    named = base.model_copy(
        update={"database_read_url": "postgresql://adclick_api@localhost:7000/adclick"}
    )
    assert replica_port(named) == 7000


@pytest.mark.parametrize(
    "read_url",
    [
        "postgresql://adclick_api@db.example.com:7000/adclick",  # not this machine
        "postgresql://adclick_api@127.0.0.1:6000/adclick",  # the primary's port
        "postgresql://adclick_api@127.0.0.1/adclick",  # no port of its own
    ],
)
def test_a_read_url_the_local_replica_cannot_serve_is_refused(read_url: str) -> None:
    settings = Settings(
        database_url="postgresql://adclick@127.0.0.1:6000/adclick", database_read_url=read_url
    )
    with pytest.raises(ConfigurationError, match="ADCLICK_DATABASE_READ_URL"):
        replica_port(settings)
