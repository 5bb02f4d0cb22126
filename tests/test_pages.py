"""The pages for people over real sockets, and in Debian's headless chromium (selenium).

One day of bookings, delivered over LMTP to a running server whose clock stands at NOW
(Monday 2 March 2026, 09:00 in Berlin, the server's default zone and the boardroom's):

    boardroom  room, subject shown  10:00-11:00Z Budget review, 11:00-12:00Z Standup,
                                    14:00-15:00Z Retro
    huddle     room, busy only      09:00-10:30Z Secret plan
    beamer     equipment, 2 units   10:00-11:00Z and 10:30-12:00Z (both units 10:30-11:00)
    cart       equipment, 1 unit    10:00-11:00Z, transparent (takes nothing)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from mr_engine.store.models import Mailbox
from mr_engine.testing.accounts import add_resource, add_users
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.servers import RunningServer, server_at
from mr_engine.testing.times import NOW, utc

from .peers import need

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DAY = (2026, 3, 2)
BOOKINGS = [  # resource, uid, start hour (UTC), minutes, summary, extra iCalendar lines
    ("boardroom", "b1", 10, 60, "Budget review", ""),
    ("boardroom", "b2", 11, 60, "Standup", ""),
    ("boardroom", "b3", 14, 60, "Retro", ""),
    ("huddle", "h1", 9, 90, "Secret plan", ""),
    ("beamer", "e1", 10, 60, "Training", ""),
    ("beamer", "e2", 10.5, 90, "Workshop", ""),
    ("cart", "c1", 10, 60, "Reminder", "TRANSP:TRANSPARENT"),
]


def at_hour(hour: float) -> dt.datetime:
    return utc(*DAY) + dt.timedelta(hours=hour)


def at_query(hour: float) -> str:
    return urlencode({"at": at_hour(hour).isoformat()})


def make_resources(db) -> None:
    add_resource(db, "boardroom", "boardroom@example.com", timezone="Europe/Berlin",
                 mr_calendar_details="subject")
    add_resource(db, "huddle", "huddle@example.com")
    add_resource(db, "beamer", "beamer@example.com", resource_type="equipment",
                 resource_capacity=2)
    add_resource(db, "cart", "cart@example.com", resource_type="equipment")


def book_the_day(server: RunningServer) -> None:
    for name, uid, hour, minutes, summary, extra in BOOKINGS:
        address = f"{name}@example.com"
        start = at_hour(hour)
        deliver(server.port, invite(uid, start, start + dt.timedelta(minutes=minutes), address,
                                    summary=summary, extra=extra), address)


@pytest.fixture
def server(db, db_url):
    make_resources(db)
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",),
                   default_timezone="Europe/Berlin") as running:
        book_the_day(running)
        yield running


def get(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        conn.close()


def door(port: int, name: str, hour: float, **query: str) -> str:
    status, kind, body = get(port, f"/rooms/{name}?" + urlencode(
        {"at": at_hour(hour).isoformat(), **query}))
    assert (status, kind) == (200, "text/html; charset=utf-8"), body
    return body


def find_path(hour_local: str, minutes: int, **fields: str) -> str:
    query = {"date": "2026-03-02", "start": hour_local, "duration": str(minutes), "kind": "",
             "capacity": "1", **fields}
    return "/?" + urlencode(query)


def found(body: str) -> list[str]:
    """The resources the finder lists, from the result list's data-resource attributes."""
    results = body.split('id="found"', 1)
    if len(results) == 1:
        assert 'id="found-none"' in body
        return []
    listing = results[1].split("</ul>", 1)[0]
    return [part.split('"', 1)[0] for part in listing.split('data-resource="')[1:]]


# --- over HTTP --------------------------------------------------------------------------------

@pytest.mark.parametrize("hour, headline, subject", [
    (9, "Free until 11:00", None),  # 10:00 in Berlin; Budget review at 11:00
    (10.5, "Busy until 13:00", "Budget review"),  # two meetings back to back
    (11, "Busy until 13:00", "Standup"),  # half-open: the first is over at 11:00Z
    (12, "Free until 15:00", None),
    (15, "Free", None),  # nothing more today
])
def test_door_says_free_or_busy_until_in_the_resource_zone(server, hour, headline, subject):
    body = door(server.http_port, "boardroom", hour)
    assert f'<h1 id="state">{headline}</h1>' in body
    assert ('class="subject">' in body) == (subject is not None)
    if subject:
        assert f'<p class="subject">{subject} (Organizer)</p>' in body
    assert '<meta http-equiv="refresh" content="60">' in body


def test_door_of_a_busy_only_resource_shows_no_subject(server):
    body = door(server.http_port, "huddle", 9.5)
    assert '<h1 id="state">Busy until 11:30</h1>' in body  # the server's default zone
    assert "Secret plan" not in body and "Organizer" not in body


def test_equipment_is_busy_only_when_every_unit_is_taken(server):
    assert '<h1 id="state">Free until 11:30</h1>' in door(server.http_port, "beamer", 10)
    both = door(server.http_port, "beamer", 10.75)
    assert '<h1 id="state">Busy until 12:00</h1>' in both and "2 of 2 in use" in both
    assert '<h1 id="state">Free</h1>' in door(server.http_port, "cart", 10.5)  # transparent


def test_door_lists_the_next_bookings(server):
    body = door(server.http_port, "boardroom", 10.5)
    listing = body.split('<ol id="next">', 1)[1].split("</ol>", 1)[0]
    assert [part.split("<", 1)[0] for part in listing.split('class="title">')[1:]] \
        == ["Budget review", "Standup", "Retro"]
    assert ">11:00</time>" in body  # 10:00Z in Berlin


@pytest.mark.parametrize("start, minutes, fields, free", [
    ("11:00", 30, {}, ["beamer", "cart"]),  # one beamer left; cart's booking is transparent
    ("11:00", 60, {}, ["cart"]),  # both beamers 10:30-11:00Z
    ("12:30", 30, {}, ["beamer", "cart", "huddle"]),
    ("13:00", 60, {"kind": "room"}, ["boardroom", "huddle"]),
    ("11:00", 30, {"kind": "equipment", "capacity": "2"}, ["beamer"]),
    ("11:00", 30, {"capacity": "3"}, []),
])
def test_finder_lists_exactly_the_resources_free_for_the_whole_period(server, start, minutes,
                                                                      fields, free):
    status, _, body = get(server.http_port, find_path(start, minutes, **fields))
    assert status == 200
    assert found(body) == free


def test_overview_shows_every_resource_its_state_and_today(server):
    status, kind, body = get(server.http_port, "/?" + at_query(10.5))
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert "<h1>Rooms and equipment</h1>" in body and '<html lang="en">' in body
    states = {name: body.split(f'data-resource="{name}"', 1)[1].split('class="state ', 1)[1]
              .split("<", 1)[0] for name in ("boardroom", "huddle", "beamer", "cart")}
    assert states == {"boardroom": 'busy">Busy until 13:00', "huddle": 'free">Free now',
                      "beamer": 'busy">Busy until 12:00', "cart": 'free">Free now'}
    assert "Budget review" in body and "Secret plan" not in body
    assert 'value="2026-03-02"' in body and 'value="12:00"' in body  # the form's defaults
    assert body.count('class="block') == len(BOOKINGS)


def test_the_public_list_shows_a_token_resource_as_busy_only(server, db):
    set_token(db, "boardroom", "s3cret")
    _, _, body = get(server.http_port, "/?" + at_query(10.5))
    assert "Budget review" not in body and "Busy until 13:00" in body


def set_token(db, name: str, token: str) -> None:
    with db.write() as session:
        session.scalar(select(Mailbox).where(Mailbox.name == name)).calendar_token = token


def test_door_of_a_resource_with_a_token_needs_it(server, db):
    set_token(db, "boardroom", "s3cret")
    for query in ("", "?token=wrong"):
        status, kind, body = get(server.http_port, "/rooms/boardroom" + query)
        assert status == 403 and kind.startswith("text/plain") and body.count("\n") == 1
    assert "Budget review" in door(server.http_port, "boardroom", 10.5, token="s3cret")


def test_unknown_names_and_users_are_404(server, db):
    add_users(db, "alice")
    for name in ("nobody", "alice", "alice@example.com"):
        status, kind, body = get(server.http_port, f"/rooms/{name}")
        assert status == 404 and kind.startswith("text/plain"), name
        assert body.count("\n") == 1 and "<" not in body
    assert get(server.http_port, "/rooms/boardroom@example.com")[0] == 200


@pytest.mark.parametrize("path, reason", [
    ("/?at=yesterday", "at: not an ISO 8601"),
    ("/rooms/boardroom?at=2026-13-01", "at: not an ISO 8601"),
    (find_path("11:00", 30, date="2026-02-30"), "date: not a date"),
    (find_path("25:00", 30), "start: not a time"),
    (find_path("11:00", 0), "duration: a whole number from 1 to 1440"),
    (find_path("11:00", 30, duration="1h"), "duration: a whole number"),
    (find_path("11:00", 30, kind="boat"), "kind: one of any, room, equipment"),
    (find_path("11:00", 30, capacity="0"), "capacity: a whole number from 1"),
])
def test_bad_values_are_a_one_line_400(server, path, reason):
    status, kind, body = get(server.http_port, path)
    assert status == 400 and kind.startswith("text/plain")
    assert body.startswith(reason) and body.count("\n") == 1


def test_untrusted_text_is_escaped(db, db_url):
    add_resource(db, "lab", "lab@example.com", mr_calendar_details="full")
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as running:
        deliver(running.port, invite("x", at_hour(9), at_hour(10), "lab@example.com",
                                     summary="<script>alert(1)</script>"), "lab@example.com")
        body = door(running.http_port, "lab", 9.5)
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


# --- in a real browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module's browser tests."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        need(f"{CHROMIUM} or {CHROMEDRIVER} is missing (apt install chromium chromium-driver)",
             "MR_ENGINE_TEST_REQUIRE_BROWSER")
    with _chromium() as driver:
        yield driver


@contextlib.contextmanager
def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mr-engine-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 1000


def test_browser_door_page_at_several_moments(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base = f"http://127.0.0.1:{server.http_port}/rooms/boardroom?"
    for hour, state, headline in [(9, "free", "Free until 11:00"),
                                  (10.5, "busy", "Busy until 13:00"),
                                  (15, "free", "Free")]:
        browser.get(base + at_query(hour))
        header = browser.find_element(By.CSS_SELECTOR, "header.state")
        assert header.get_attribute("data-state") == state
        assert browser.find_element(By.ID, "state").text == headline
        shot(browser, tmp_path, f"door-{state}-{hour}")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    colour = header.value_of_css_property("background-color")
    assert colour == "rgba(10, 92, 36, 1)"  # white on dark green: contrast above 7:1


def test_browser_finder_form_lists_exactly_the_free_resources(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # At 10:40 in Berlin the form proposes today at 11:00 for an hour.
    browser.get(f"http://127.0.0.1:{server.http_port}/?" + at_query(9 + 2 / 3))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Rooms and equipment"
    for field in browser.find_elements(By.CSS_SELECTOR, "form input:not([type=hidden]), select"):
        assert browser.find_element(By.CSS_SELECTOR, f"label[for={field.get_attribute('id')}]")
    shot(browser, tmp_path, "overview")
    assert _find(browser, "30", "") == ["beamer", "cart"]
    assert browser.find_element(By.ID, "duration").get_attribute("value") == "30"  # kept
    shot(browser, tmp_path, "finder-result")
    assert _find(browser, "60", "") == ["cart"]
    assert _find(browser, "30", "Room") == []
    text = browser.find_element(By.ID, "found-none").text
    assert text == "No resource that fits is free for the whole period."
    assert _find(browser, "240", "Any") == ["cart"]


def _find(browser, minutes: str, kind: str) -> list[str]:
    """Fill in the duration (and the kind), submit, and read the resources found."""
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import Select, WebDriverWait

    duration = browser.find_element(By.ID, "duration")
    duration.clear()
    duration.send_keys(minutes)
    if kind:  # else as it was
        Select(browser.find_element(By.ID, "kind")).select_by_visible_text(kind)
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.CSS_SELECTOR, "#finder button[type=submit]").click()
    # The result page has loaded. Asked about the old page while it unloads, ChromeDriver
    # may answer "unhandled inspector error" instead of "stale element": ask again.
    WebDriverWait(browser, 20, ignored_exceptions=(WebDriverException,)).until(
        staleness_of(page))
    assert browser.find_element(By.ID, "results-heading").text.startswith("Free for the whole")
    items = browser.find_elements(By.CSS_SELECTOR, "#found li")
    return [item.get_attribute("data-resource") for item in items]
