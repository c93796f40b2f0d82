"""The ad manager (web/) in a real browser: Debian's Chromium driven by Playwright against
the live test stack. What the pages show is what the API answers: the live list and each
list the closer publishes after it (a late click's revision included), any window with
filters, one ad's chart and total, the admin pages, and a clear state for every failure.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from adclick.close.closer import MinuteCloser
from adclick.settings import Settings
from tests.api_client import ApiProcess, Tokens, with_tokens
from tests.conftest import fresh_settings
from tests.helpers import ingest_until_idle, load, recent_spec, send, wait_for
from tests.web import built_ad_manager, chromium_path

OPERATIONS = Path(__file__).resolve().parents[2] / "graphql" / "operations"


@dataclass
class Manager:
    settings: Settings
    api: ApiProcess
    tokens: Tokens
    browser: Browser

    def ask(self, operation: str, **variables: Any) -> dict[str, Any]:
        """What the API answers the operation the page sends."""
        client = self.api.client(self.tokens.admin)
        return client.run((OPERATIONS / f"{operation}.graphql").read_text(), **variables)

    def page(self, name: str, token: str | None) -> Page:
        page = self.browser.new_page()
        page.goto(f"{self.api.url}/#{name}")
        if token:
            page.get_by_test_id("token").fill(token)
        return page


class Timings:
    """Where the browser tests put their screenshots and figures: AD_MANAGER_SCREENSHOTS
    (docs/ when the figures for docs/benchmarks.md are made), else a temporary folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def record(self, **figures: float) -> None:
        path = self.directory / "ad-manager-timings.json"
        print(json.dumps(figures))
        path.write_text(json.dumps(figures, indent=1) + "\n")


@pytest.fixture(scope="module")
def timings(tmp_path_factory: pytest.TempPathFactory) -> Timings:
    chosen = os.environ.get("AD_MANAGER_SCREENSHOTS")
    return Timings(Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots"))


def close_once(settings: Settings) -> None:
    MinuteCloser(settings).run(threading.Event(), once=True)


@pytest.fixture(scope="module")
def manager(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Manager]:
    """About 12 minutes of clicks, their lists closed, the API serving the built app."""
    built_ad_manager()
    with fresh_settings(stack_settings) as base:
        settings, tokens = with_tokens(
            base, close_interval_s=0.2, close_revision_interval=timedelta(0),
            api_refresh_interval_s=0.2,
        )  # fmt: skip
        load(settings, recent_spec(6_000, seed=71, ads=200, event_rate=8.0,
                                   duplicate_fraction=0.05, late_fraction=0.05))  # fmt: skip
        ingest_until_idle(settings)
        close_once(settings)
        api = ApiProcess(settings, tmp_path_factory.mktemp("api") / "api.log")
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield Manager(settings, api, tokens, browser)
        finally:
            browser.close()
            playwright.stop()
            assert api.stop() == 0


def _rows(page: Page) -> list[tuple[str, int]]:
    """The (ad, clicks) rows of the page's top list."""
    cells = page.get_by_test_id("top-row").evaluate_all(
        "rows => rows.map(r => [r.querySelector('.ad').textContent,"
        " r.querySelector('.count').textContent])"
    )
    return [(ad, int(clicks.replace(",", ""))) for ad, clicks in cells]


def _ads(answer: dict[str, Any]) -> list[tuple[str, int]]:
    return [(a["adId"], a["clicks"]) for a in answer["ads"]]


def _received(page: Page) -> list[tuple[str, int]]:
    """(window end, revision) of each list the page received, newest first."""
    items = (
        page.get_by_test_id("received")
        .locator("li")
        .evaluate_all("items => items.map(i => [i.dataset.windowEnd, Number(i.dataset.revision)])")
    )
    return [(end, revision) for end, revision in items]


def test_the_live_page_shows_the_list_then_each_published_one(
    manager: Manager, timings: Timings
) -> None:
    # A returning reader: the token is in the tab's session already. Milliseconds from
    # navigation to the first row of the list (a figure for docs/benchmarks.md, not
    # asserted).
    page = manager.browser.new_page()
    page.add_init_script(f"sessionStorage.setItem('adclick.token', '{manager.tokens.reader}')")
    page.goto(f"{manager.api.url}/#live")
    first_rows_ms = page.wait_for_function(
        "() => document.querySelector('[data-testid=top-row]') && performance.now()"
    ).json_value()
    page.get_by_test_id("window-5").click()
    answer = manager.ask("TopAds", lastMinutes=5, limit=100)["topAds"]
    expected = _ads(answer)
    assert expected, "no clicks: the comparison proves nothing"
    wait_for(lambda: _rows(page) == expected, timeout_s=30, what="the page's list")
    complete = "complete" if answer["window"]["complete"] else "still counting"
    expect(page.get_by_test_id("complete")).to_have_text(complete)
    expect(page.get_by_test_id("watermark")).to_have_text(answer["window"]["watermark"])
    wait_for(
        lambda: "adclick_api_subscriptions 1.0" in httpx.get(f"{manager.api.url}/metrics").text,
        timeout_s=30,
        what="the page's subscription",
    )
    # Late clicks in the newest closed minute: the closer revises its lists at once.
    close_once(manager.settings)  # first whatever minute closed meanwhile
    now = datetime.now(tz=UTC).timestamp() * 1000
    closed = manager.ask(
        "TopAdsHistory", windowMinutes=5, limit=1,
        **{"from": _iso(int(now) - 3_600_000), "to": _iso(int(now) + 60_000)},
    )["topAdsHistory"]  # fmt: skip
    newest = closed[-1]["windowEnd"]  # the newest closed minute ends there
    late = [{"ad_id": "late-ad", "timestamp": _ms(newest) - 30_000 + i, "user_id": f"u{i}",
             "ip": "198.51.100.7", "country": "US", "click_id": f"late-{i}"}
            for i in range(50)]  # fmt: skip
    send(manager.settings, late)
    ingest_until_idle(manager.settings)
    close_once(manager.settings)
    wait_for(
        lambda: any(_ms(end) == _ms(newest) and rev >= 2 for end, rev in _received(page)),
        timeout_s=30,
        what="the revised list of the minute with the late clicks",
    )
    expect(page.get_by_test_id("received")).to_contain_text("(revised)")
    shown_end = page.get_by_test_id("window-end").text_content() or ""
    stored = manager.ask(
        "TopAdsHistory", windowMinutes=5, **{"from": shown_end, "to": _iso(_ms(shown_end) + 60_000)}
    )["topAdsHistory"]
    assert _rows(page) == _ads(stored[-1])  # the current revision of the list shown
    assert ("late-ad", 50) in _rows(page)

    # Clicks two minutes later move the watermark: the closer closes the next minutes and
    # publishes their lists, and the page shows them.
    later = [{"ad_id": f"later-ad-{i % 7}", "timestamp": _ms(newest) + 120_000 + i,
              "user_id": f"v{i}", "ip": "198.51.100.8", "country": "IN",
              "click_id": f"later-{i}"} for i in range(70)]  # fmt: skip
    send(manager.settings, later)
    ingest_until_idle(manager.settings)

    newer = (
        "(end) => [...document.querySelectorAll('[data-testid=received] li')]"
        ".some(li => Date.parse(li.dataset.windowEnd) > end)"
    )
    for _ in range(10):
        published = time.monotonic()
        close_once(manager.settings)
        try:
            page.wait_for_function(newer, arg=_ms(newest), timeout=5_000)
            break
        except PlaywrightTimeout:
            continue  # the watermark had not passed the next minute yet
    else:
        raise AssertionError("the list of the next closed minute never showed")
    timings.record(first_render_ms=round(first_rows_ms),
                   new_list_visible_ms=round((time.monotonic() - published) * 1000))  # fmt: skip
    page.close()


def test_any_window_with_filters_shows_what_topads_answers(manager: Manager) -> None:
    hour = manager.ask("TopAds", lastMinutes=60, limit=1)["topAds"]["window"]
    start, end = _ms(hour["to"]) - 10 * 60_000, _ms(hour["to"]) - 2 * 60_000
    page = manager.page("window", manager.tokens.reader)
    page.get_by_test_id("range-from").fill(_iso(start)[:16])
    page.get_by_test_id("range-to").fill(_iso(end)[:16])
    page.get_by_test_id("limit").fill("20")
    for country in (None, ["US", "IN"]):
        if country:
            page.get_by_test_id("filter-country").fill(",".join(country))
            page.get_by_test_id("filter-country").blur()
        filter_ = {"country": country} if country else None
        window = {"from": _iso(start), "to": _iso(end)}
        answer = manager.ask("TopAdsInRange", limit=20, filter=filter_, **window)["topAds"]
        assert answer["ads"], "no clicks: the comparison proves nothing"
        wait_for(lambda a=answer: _rows(page) == _ads(a), timeout_s=30, what="the page's list")
        expect(page.get_by_test_id("source")).to_have_text(answer["source"])
    # A window without clicks says so.
    page.get_by_test_id("range-from").fill("2020-01-01T00:00")
    page.get_by_test_id("range-to").fill("2020-01-01T00:10")
    expect(page.get_by_test_id("empty").or_(page.get_by_test_id("refused"))).to_be_visible()
    page.close()


def test_one_ad_chart_and_total_are_adclicks(manager: Manager) -> None:
    hour = manager.ask("TopAds", lastMinutes=60, limit=1)["topAds"]
    ad = hour["ads"][0]["adId"]
    start, end = _ms(hour["window"]["from"]), _ms(hour["window"]["to"])
    page = manager.page("ad", manager.tokens.reader)
    page.get_by_test_id("range-from").fill(_iso(start)[:16])
    page.get_by_test_id("range-to").fill(_iso(end)[:16])
    page.get_by_test_id("ad-id").fill(ad)
    page.get_by_test_id("ad-id").press("Enter")
    for granularity, country in (("MINUTE", None), ("HOUR", ["US"])):
        page.get_by_test_id("granularity").select_option(granularity)
        if country:
            page.get_by_test_id("filter-country").fill(",".join(country))
            page.get_by_test_id("filter-country").blur()
        answer = manager.ask("AdClicks", adId=ad, granularity=granularity,
                             filter={"country": country} if country else None,
                             **{"from": _iso(start), "to": _iso(end)})["adClicks"]  # fmt: skip
        assert answer["clicks"] > 0, "no clicks: the comparison proves nothing"
        expect(page.get_by_test_id("ad-total")).to_have_text(str(answer["clicks"]))
        points = [(b["start"], b["clicks"]) for b in answer["series"]]
        wait_for(lambda p=points: _points(page) == p, timeout_s=30, what="the chart's points")
        expect(page.get_by_test_id("ad-chart").locator("canvas")).to_be_visible()
    page.close()


def test_each_failure_has_its_state_and_admins_see_their_pages(manager: Manager) -> None:
    for token in (None, "not-a-token"):
        stranger = manager.page("live", token)
        expect(stranger.get_by_test_id("unauthenticated").first).to_be_visible()
        stranger.close()
    reader = manager.page("ingest", manager.tokens.reader)
    expect(reader.get_by_test_id("forbidden")).to_be_visible()
    reader.close()
    admin = manager.page("ingest", manager.tokens.admin)
    partitions = manager.ask("IngestStatus")["ingestStatus"]
    expect(admin.get_by_test_id("partition-row")).to_have_count(len(partitions))
    admin.get_by_test_id("nav-retention").click()
    row = admin.get_by_test_id("policy-clicks_1m")
    row.get_by_test_id("hot").fill("forever and a day")
    row.get_by_test_id("save").click()
    expect(row.get_by_test_id("refused")).to_contain_text("BAD_POLICY")
    row.get_by_test_id("hot").fill("P120D")
    row.get_by_test_id("save").click()
    wait_for(
        lambda: any(p["relation"] == "clicks_1m" and p["hot"] == "P120D"
                    for p in manager.ask("RetentionPolicies")["retentionPolicies"]),
        timeout_s=30, what="the policy to be saved",
    )  # fmt: skip
    expect(row.get_by_test_id("hot")).to_have_value("P120D")
    admin.close()


def _points(page: Page) -> list[tuple[str, int]]:
    """The (bucket start, clicks) points the one-ad page charts (its table of them)."""
    rows = (
        page.get_by_test_id("series")
        .locator("tbody tr")
        .evaluate_all(
            "rows => rows.map(r =>"
            " [r.dataset.start, Number(r.querySelector('.count').textContent)])"
        )
    )
    return [(start, clicks) for start, clicks in rows]


def test_the_keyboard_alone_moves_between_pages(manager: Manager) -> None:
    page = manager.page("live", manager.tokens.reader)  # the token field has the focus

    def focused() -> str:
        return str(page.evaluate("document.activeElement.dataset.testid"))

    page.keyboard.press("Tab")  # into the page: its first control
    assert focused() == "window-1"
    page.keyboard.press("Shift+Tab")
    expected = ["token", "nav-retention", "nav-ingest", "nav-ad", "nav-window"]
    for name in expected[1:]:
        page.keyboard.press("Shift+Tab")
        assert focused() == name
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Top ads of any window")).to_be_visible()
    page.go_back()
    expect(page.get_by_role("heading", name="Live top ads")).to_be_visible()
    page.close()


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_the_live_page_fits_a_desktop_and_a_phone(
    manager: Manager, timings: Timings, width: int, height: int
) -> None:
    page = manager.browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{manager.api.url}/#live")
    page.get_by_test_id("token").fill(manager.tokens.reader)
    page.get_by_test_id("window-15").click()
    expect(page.get_by_test_id("top-row").first).to_be_visible()
    # Nothing wider than the screen: no sideways scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    path = timings.directory / f"ad-manager-live-{width}x{height}.png"
    page.screenshot(path=path)
    assert path.stat().st_size > 10_000
    page.close()


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
