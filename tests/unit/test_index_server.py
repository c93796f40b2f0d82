"""What crosses between an API worker and its supervisor (api/index_server.py) arrives as
it left: refusals with their codes, a request's budget as far as it was spent, and the
supervisor's address and key through the worker's environment."""

from __future__ import annotations

import pickle

from hypothesis import given
from hypothesis import strategies as st

from adclick.api.index_server import Address
from adclick.query.budget import RequestBudget
from adclick.query.errors import ErrorCode, QueryError
from adclick.query.filters import Source
from adclick.query.window import MINUTE_MS, Window


@given(st.sampled_from(ErrorCode), st.text())
def test_a_refusal_keeps_its_code_and_message(code: ErrorCode, message: str) -> None:
    copy = pickle.loads(pickle.dumps(QueryError(code, message)))
    assert isinstance(copy, QueryError)
    assert (copy.code, str(copy)) == (code, message)


@given(
    st.integers(1, 10_000),
    st.lists(st.tuples(st.integers(1, 500), st.sampled_from(Source), st.integers(1, 20))),
)
def test_a_budget_copy_is_spent_as_far_as_the_original(
    max_cost: int, charges: list[tuple[int, Source, int]]
) -> None:
    budget = RequestBudget(max_cost, raw_filter_cost=3, max_filter_values=10)
    copy_refused = original_refused = 0
    for minutes, source, ads in charges:
        copy = pickle.loads(pickle.dumps(budget))
        window = Window(0, minutes * MINUTE_MS)
        for target in (copy, budget):
            try:
                target.charge("adClicks", window, source, ads)
            except QueryError:
                if target is copy:
                    copy_refused += 1
                else:
                    original_refused += 1
        assert (copy.cost, copy.max_cost) == (budget.cost, budget.max_cost)
    assert copy_refused == original_refused
    assert budget.cost <= max_cost


@given(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1), st.binary())
def test_the_address_reaches_a_worker_through_its_environment(name: str, key: bytes) -> None:
    address = Address(name, key)
    assert Address.from_environment(address.environment()) == address
    assert address.socket == "\0" + name
