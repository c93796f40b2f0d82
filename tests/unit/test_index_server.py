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
    address = Address(f"/run/{name}/index.sock", key, f"/run/{name}/index.state")
    assert Address.from_environment(address.environment()) == address


charges = st.lists(
    st.tuples(st.integers(1, 500), st.sampled_from(Source), st.integers(1, 20), st.integers(0, 4))
)


@given(st.integers(1, 10_000), charges)
def test_charging_a_copy_and_adding_it_back_charges_as_charging_here(
    max_cost: int, fields: list[tuple[int, Source, int, int]]
) -> None:
    """What a worker does (a copy charged by the supervisor, added back) spends and
    refuses what charging its own budget would; a refused field adds nothing."""
    here = RequestBudget(max_cost, raw_filter_cost=3, max_filter_values=10)
    worker = RequestBudget(max_cost, raw_filter_cost=3, max_filter_values=10)
    for minutes, source, ads, values in fields:
        window = Window(0, minutes * MINUTE_MS)
        filter_args = {"country": ["US"] * values}
        refused_here = refused_there = None
        before = here.copy()
        try:
            here.charge_filter(filter_args)
            here.charge("adClicks", window, source, ads)
        except QueryError as exc:
            refused_here = exc.code
            here = before  # a refused field did no work: the worker adds nothing for it
        sent = worker.copy()
        charged = pickle.loads(pickle.dumps(sent))  # as it crosses to the supervisor
        try:
            charged.charge_filter(filter_args)
            charged.charge("adClicks", window, source, ads)
        except QueryError as exc:
            refused_there = exc.code
        else:
            worker.add_charged(sent, pickle.loads(pickle.dumps(charged)))
        assert refused_there == refused_here
        assert (worker.cost, worker.filter_values) == (here.cost, here.filter_values)


def test_fields_charged_in_parallel_cannot_overspend_together() -> None:
    budget = RequestBudget(100, raw_filter_cost=3, max_filter_values=10)
    window = Window(0, 60 * MINUTE_MS)
    first, second = budget.copy(), budget.copy()  # two fields sent at once
    charged_first, charged_second = first.copy(), second.copy()
    charged_first.charge("topAds", window, Source.ROLLUP)
    charged_second.charge("topAds", window, Source.ROLLUP)  # each alone fits: 60 <= 100
    budget.add_charged(first, charged_first)
    try:
        budget.add_charged(second, charged_second)
    except QueryError as exc:
        assert exc.code is ErrorCode.QUERY_TOO_EXPENSIVE
    else:
        raise AssertionError("120 minutes charged against a budget of 100")
    assert budget.cost == 60
