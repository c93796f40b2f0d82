"""Fixtures of the API tests (test_api.py, test_api_http.py): one dataset and one API
for all of them."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from adclick.close.closer import MinuteCloser
from adclick.loadgen.truth import Truth
from adclick.settings import Settings
from tests.api_client import ApiProcess, Tokens, with_tokens
from tests.conftest import fresh_settings
from tests.helpers import ingest_until_idle, load, recent_spec


class ApiData:
    """Ingested loadgen traffic, its truth, and a running API with its tokens."""

    def __init__(self, settings: Settings, truth: Truth, api: ApiProcess, tokens: Tokens):
        self.settings = settings
        self.truth = truth
        self.api = api
        self.tokens = tokens
        self.reader = api.client(tokens.reader)


@pytest.fixture(scope="session")
def api_data(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiData]:
    """About 80 minutes of traffic with duplicates, late and invalid events, then the API.

    The API starts after ingest has finished, so every answer sees all of it. Tests that
    start an API of their own from ``settings`` get a single process.
    """
    with fresh_settings(stack_settings) as base:
        settings, tokens = with_tokens(base, api_refresh_interval_s=0.2)
        spec = recent_spec(
            40_000,
            seed=23,
            ads=3_000,
            event_rate=8.0,
            duplicate_fraction=0.05,
            late_fraction=0.05,
            max_lateness_s=600,
            invalid_fraction=0.01,
        )
        truth = load(settings, spec)
        ingest_until_idle(settings)
        MinuteCloser(settings).run(threading.Event(), once=True)  # lists for topAdsHistory
        # Two workers, as production runs it: every API test goes through a worker
        # and its supervisor's indexes (api/index_server.py).
        api = ApiProcess(
            settings.model_copy(update={"api_workers": 2}),
            tmp_path_factory.mktemp("api") / "api.log",
        )
        try:
            yield ApiData(settings, truth, api, tokens)
        finally:
            assert api.stop() == 0  # SIGTERM is a clean stop
