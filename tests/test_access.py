"""Who is asking (X-Forwarded-For believed only from trusted proxies) and the passcode's failure log: delays per
visitor, attempts in line one at a time, visitors forgotten after an idle hour."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

import ui.gate

from core.policy import (
    FORGET_AFTER_S,
    FREE_ATTEMPTS,
    MAX_DELAY_S,
    FailureLog,
    client_identity,
    failure_delay,
    parse_trusted_proxies,
    passcode_matches,
)
from core.errors import ConfigurationError
from core.shared import close_pools
from core.shared.pool import open_database
from tests import pgserver
from tests.apptest import APP, plain

PROXY = "10.0.0.5"
TRUSTED = parse_trusted_proxies(f"{PROXY}, 172.16.0.0/12, 2001:db8:ffff::/48")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Sleeps:
    """A stand-in for time.sleep that records how long each attempt was made to wait."""

    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# REPRO_TRUSTED_PROXIES


def test_trusted_proxies_are_addresses_and_networks():
    assert [str(n) for n in TRUSTED] == ["10.0.0.5/32", "172.16.0.0/12", "2001:db8:ffff::/48"]
    assert parse_trusted_proxies(["10.0.0.5", " 10.1.0.0/16 "]) == parse_trusted_proxies("10.0.0.5,10.1.0.0/16")
    for nothing in (None, "", " , "):
        assert parse_trusted_proxies(nothing) == ()


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.300", "10.0.0.0/33", "10.0.0.5, *", "2001:db8::/129"])
def test_a_bad_trusted_proxy_is_refused_by_name(value):
    with pytest.raises(ConfigurationError, match=r"^REPRO_TRUSTED_PROXIES: '.+' is not an IP address or network"):
        parse_trusted_proxies(value)


def test_a_bad_trusted_proxy_stops_the_app_at_the_gate(app_environment, monkeypatch):
    monkeypatch.setenv("REPRO_TRUSTED_PROXIES", "10.0.0.5, proxy.internal")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    assert "REPRO_TRUSTED_PROXIES: 'proxy.internal' is not an IP address" in plain(at.error[0].value)
    assert not [b for b in at.button if b.key == "run"]  # nothing past the gate is drawn


# Who is asking


@pytest.mark.parametrize("header", ["", "1.2.3.4", "5.6.7.8", "1.2.3.4, 10.0.0.5", "not an address", "::1"])
def test_a_client_cannot_choose_its_identity_with_the_header(header):
    """Without a trusted proxy, rotating X-Forwarded-For changes nothing: the peer is the client."""
    assert client_identity("203.0.113.7", header, ()) == "ip:203.0.113.7"
    assert client_identity("203.0.113.7", header, TRUSTED) == "ip:203.0.113.7"  # this peer is no trusted proxy


def test_behind_a_trusted_proxy_the_client_is_the_hop_it_appended():
    assert client_identity(PROXY, "198.51.100.9", TRUSTED) == "ip:198.51.100.9"
    # Whatever the client wrote itself stands left of what the proxy appended.
    assert client_identity(PROXY, "1.2.3.4, 198.51.100.9", TRUSTED) == "ip:198.51.100.9"
    assert client_identity(PROXY, "", TRUSTED) == "ip:10.0.0.5"  # a proxy that forwards no header: itself


def test_a_chain_of_trusted_proxies_is_walked_from_the_right():
    assert client_identity(PROXY, "6.6.6.6, 198.51.100.9, 172.20.1.1, 172.16.0.2", TRUSTED) == "ip:198.51.100.9"
    assert client_identity(PROXY, "172.20.1.1, 172.16.0.2", TRUSTED) == "ip:172.20.1.1"  # all trusted: left-most


@pytest.mark.parametrize(("header", "identity"), [
    ("198.51.100.9:51234", "ip:198.51.100.9"),
    ("[2001:db8:1:2::9]:443", "ip:2001:db8:1:2::/64"),
    ("::ffff:198.51.100.9", "ip:198.51.100.9"),
    ("garbage", "ip:10.0.0.5"),
    ("198.51.100.9, unknown", "ip:10.0.0.5"),  # the proxy handed over nonsense: nothing further left is believed
    ("198.51.100.9 ,172.16.0.2", "ip:198.51.100.9"),
    ("198.51.100.9, 172.16.0.2, ", "ip:10.0.0.5"),  # an empty hop is no address either
])
def test_hops_as_proxies_write_them_and_malformed_ones(header, identity):
    assert client_identity(PROXY, header, TRUSTED) == identity


def test_an_ipv6_client_is_its_64_so_rotating_addresses_within_it_changes_nothing():
    assert client_identity("2001:db8:1:2::9", "", ()) == "ip:2001:db8:1:2::/64"
    assert client_identity("2001:db8:1:2:ffff::1", "", ()) == "ip:2001:db8:1:2::/64"
    assert client_identity("2001:db8:1:3::9", "", ()) == "ip:2001:db8:1:3::/64"
    assert client_identity("2001:db8:ffff::1", "2001:db8:1:2::9", TRUSTED) == "ip:2001:db8:1:2::/64"
    assert client_identity("::ffff:203.0.113.7", "", ()) == "ip:203.0.113.7"  # a dual-stack socket's IPv4 client


@pytest.mark.parametrize("peer", ["", "garbage", "1.2.3.4, 5.6.7.8", "unix:/run/app.sock"])
def test_a_peer_that_is_no_address_shares_one_identity(peer):
    """Streamlit's server may hand over whatever X-Forwarded-For said; no such value picks its own identity."""
    assert client_identity(peer, "", TRUSTED) == client_identity(peer, "1.2.3.4", ()) == "ip:unknown"


# The passcode


def test_the_passcode_comparison_is_exact():
    assert passcode_matches("red-panda", "red-panda")
    assert not passcode_matches("red-pand", "red-panda")
    assert not passcode_matches("red-panda ", "red-panda")
    assert passcode_matches("pässcode", "pässcode")


def test_failures_are_counted_per_visitor_and_a_match_clears_them():
    sleeps = Sleeps()
    log = FailureLog(sleep=sleeps)
    for _ in range(FREE_ATTEMPTS + 2):
        assert not log.attempt("ip:10.0.0.7", "wrong", "right")
    assert log.attempt("ip:10.0.0.8", "wrong", "right") is False  # another visitor is not slowed down
    assert log.attempt("ip:10.0.0.7", "right", "right")
    assert not log.attempt("ip:10.0.0.7", "wrong", "right")
    assert sleeps.waits == [0, 0, 0, 1.0, 2.0, 0, 4.0, 0]
    assert failure_delay(40) == MAX_DELAY_S


def test_parallel_guesses_from_one_visitor_wait_in_line():
    """20 wrong guesses at once take the sum of their delays, one after another, not one delay."""
    delay_s, guesses = 0.03, 20
    spans: list[tuple[float, float]] = []

    def sleep(seconds: float) -> None:
        start = time.monotonic()
        time.sleep(seconds)
        spans.append((start, time.monotonic()))

    log = FailureLog(delay=lambda failures: delay_s, sleep=sleep)
    started = time.monotonic()
    guess_at_once(log, "ip:10.0.0.7", guesses)
    assert time.monotonic() - started >= guesses * delay_s
    spans.sort()
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))


def test_another_visitor_does_not_wait_behind_them():
    log = FailureLog(delay=lambda failures: 0.05)
    waiting = threading.Thread(target=guess_at_once, args=(log, "ip:10.0.0.7", 20))
    waiting.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert not log.attempt("ip:10.0.0.8", "wrong", "right")
    assert time.monotonic() - started < 0.6  # the other visitor's line lasts a whole second
    waiting.join()


def guess_at_once(log: FailureLog, visitor: str, guesses: int) -> None:
    threads = [threading.Thread(target=log.attempt, args=(visitor, f"guess {k}", "right")) for k in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_visitor_idle_for_an_hour_is_forgotten():
    clock, sleeps = Clock(), Sleeps()
    log = FailureLog(sleep=sleeps, clock=clock)
    for visitor in range(1000):
        for _ in range(FREE_ATTEMPTS + 1):
            log.attempt(f"ip:10.1.{visitor // 256}.{visitor % 256}", "wrong", "right")
    clock.now += FORGET_AFTER_S - 1
    log.attempt("ip:10.9.9.9", "wrong", "right")
    assert len(log) == 1001  # nobody has been idle for an hour yet
    clock.now += 1
    sleeps.waits.clear()
    log.attempt("ip:10.1.0.0", "wrong", "right")
    assert sleeps.waits == [0]  # its failures were forgotten with it
    assert len(log) == 2  # and so were the other 999; the visitor of a second ago is still remembered


def test_a_visitor_who_gets_in_is_not_kept():
    log = FailureLog(sleep=Sleeps())
    log.attempt("ip:10.0.0.7", "wrong", "right")
    log.attempt("ip:10.0.0.7", "right", "right")
    log.attempt("ip:10.0.0.8", "right", "right")
    assert len(log) == 1  # only the last, until the next attempt looks


@pytest.mark.browser
@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_a_new_forwarded_address_for_every_guess_counts_only_behind_a_trusted_proxy(tmp_path, trusted):
    """The reported attack, against `streamlit run`: a new X-Forwarded-For for each wrong guess. Straight from the
    client the header is not believed and the sixth guess waits its 4 s; from a trusted proxy each address it
    forwards is a visitor of its own. (FORWARDED_ALLOW_IPS empty: Streamlit's server would otherwise believe the
    header itself, from this test's loopback browser as from a proxy on the same machine.)"""
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, serve_app

    waits = []
    with (serve_app(tmp_path, {"APP_PASSCODE": "red-panda", "REPRO_TRUSTED_PROXIES": trusted,
                                    "FORWARDED_ALLOW_IPS": ""}) as url,
          sync_api.sync_playwright() as playwright):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for k in range(FREE_ATTEMPTS + 3):
            context = browser.new_context(extra_http_headers={"X-Forwarded-For": f"198.51.100.{k}"})
            page = context.new_page()
            page.goto(url)
            page.get_by_role("button", name="Enter").wait_for(timeout=60_000)
            page.get_by_label("Passcode", exact=True).and_(page.locator("input")).fill("not it")
            started = time.monotonic()
            page.get_by_role("button", name="Enter").click()
            page.get_by_text("That passcode is not right.").wait_for(timeout=30_000)
            waits.append(time.monotonic() - started)
            context.close()
        browser.close()
    sixth = failure_delay(FREE_ATTEMPTS + 2)
    if trusted:
        assert max(waits) < sixth, waits
    else:
        assert waits[-1] >= sixth, waits


# With DATABASE_URL: the failure counts every replica shares

@pytest.fixture
def shared_gate(postgres_url, app_environment, monkeypatch):
    """A passcode gate whose DATABASE_URL is a new, empty database; returns its URL."""
    url = pgserver.new_database(postgres_url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("APP_PASSCODE", "red-panda")
    yield url
    close_pools()


def guess(at: AppTest, passcode: str) -> list[str]:
    at.text_input(key="passcode").set_value(passcode)
    at.button(key="enter_passcode").click().run()
    assert not at.exception
    return [plain(error.value) for error in at.error]


def test_with_a_database_the_failures_are_kept_where_every_replica_counts_them(shared_gate):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert guess(at, "not it") == ["That passcode is not right."]
    guess(at, "still not")
    with psycopg.connect(shared_gate) as conn:
        assert conn.execute("SELECT failures, pending FROM repro_passcode_failures").fetchall() == [(2, 0)]


def test_a_passcode_that_cannot_be_counted_is_not_checked(shared_gate, monkeypatch):
    database = open_database(shared_gate, timeout_s=1)  # waits a second for the lost database, not ten
    monkeypatch.setattr(ui.gate, "shared_database", lambda url: database)
    at = AppTest.from_file(APP, default_timeout=60).run()
    server, name = shared_gate.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
    try:
        assert guess(at, "red-panda") == ["The passcode cannot be checked right now; try again in a minute."]
    finally:
        database.pool.close()
    assert [button.key for button in at.button] == ["enter_passcode"]  # even the right passcode: not let in


def test_a_database_that_cannot_be_reached_leaves_the_process_counting(shared_gate, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", shared_gate + "_missing")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert guess(at, "not it") == ["That passcode is not right."]
    assert guess(at, "red-panda") == []
    assert not [button for button in at.button if button.key == "enter_passcode"]
