"""The README's own Caddy and nginx blocks in front of two `streamlit run app.py` replicas sharing one PostgreSQL,
driven by a real Chromium: the WebSocket goes through, an upload reaches the replica that holds its session, and new
visitors still get the app when a replica stops. Only the site address and the upstream ports are changed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error as BrowserError

from tests.test_browser import ROOT, _free_port, settle
from tests.test_browser_import import export_with_answer
from tests.test_replicas import browser, experiment_page, replica_env, replicas, run  # noqa: F401 - two are fixtures

pytestmark = pytest.mark.browser
HEADINGS = {"caddy": "#### Caddy (sticky by cookie, active health check)",
            "nginx": "#### nginx (sticky by client address, passive checks)"}
README_UPSTREAMS = ("127.0.0.1:8501", "127.0.0.1:8502")
NGINX_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
VISITORS = 3  # a proxy that is not sticky sends an upload to the other replica half the time: it passes 1 in 8


def readme_block(kind: str) -> str:
    """The fenced ```kind block right under the proxy's heading in README.md."""
    after = (ROOT / "README.md").read_text().partition(HEADINGS[kind] + "\n")[2]
    found = re.match(rf"\s*```{kind}\n(.*?\n)```", after, re.S)
    assert found, f"README.md has no ```{kind} block under {HEADINGS[kind]!r}"
    return found[1]


def substituted(text: str, changes: dict[str, str]) -> str:
    """`text` with each key replaced by its value; a key missing from the README's block fails the test."""
    for old, new in changes.items():
        assert old in text, f"the README's block no longer has {old!r}"
        text = text.replace(old, new)
    return text


def binary(kind: str) -> str:
    found = shutil.which(kind) or shutil.which(kind, path="/usr/sbin:/usr/bin")
    if not found:
        pytest.fail(f"{kind} is missing: apt-get install -y {kind} (make system does it)")
    return found


def caddy_command(folder: Path, port: int, upstreams: list[str]) -> tuple[list[str], dict[str, str]]:
    block = substituted(readme_block("caddy"), {"repro.example.com {": f"http://127.0.0.1:{port} {{",
                                                **dict(zip(README_UPSTREAMS, upstreams))})
    config = folder / "Caddyfile"
    # No admin endpoint and no certificates: several test runs share this machine.
    config.write_text("{\n    admin off\n    auto_https off\n}\n" + block)
    home = {"HOME": str(folder), "XDG_DATA_HOME": str(folder / "data"), "XDG_CONFIG_HOME": str(folder / "config")}
    return [binary("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"], {**os.environ, **home}


def nginx_command(folder: Path, port: int, upstreams: list[str]) -> tuple[list[str], dict[str, str]]:
    block = substituted(readme_block("nginx"), {"listen 443 ssl;": f"listen 127.0.0.1:{port};",
                                                "server_name repro.example.com;": "server_name 127.0.0.1;",
                                                **dict(zip(README_UPSTREAMS, upstreams))})
    temp = "\n".join(f"    {name}_temp_path {folder / name};" for name in NGINX_TEMP_PATHS)
    # As root nginx's workers would be nobody, who cannot write its temporary files under the 0700 tmp_path.
    user = "user root;\n" if os.geteuid() == 0 else ""
    config = folder / "nginx.conf"
    config.write_text(f"{user}pid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'};\nevents {{}}\n"
                      f"http {{\n    access_log {folder / 'access.log'};\n{temp}\n{block}}}\n")
    return [binary("nginx"), "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config),
            "-g", "daemon off;"], dict(os.environ)


@contextlib.contextmanager
def proxy(kind: str, folder: Path, upstreams: list[str]) -> Iterator[str]:
    """The README's `kind` block in front of `upstreams`, on a loopback port over plain HTTP; yields its URL."""
    folder.mkdir()
    port = _free_port()
    command, env = (caddy_command if kind == "caddy" else nginx_command)(folder, port, upstreams)
    log = folder / "proxy.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_health(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                return
        time.sleep(0.2)
    pytest.fail(f"the proxy never answered {url}/_stcore/health: {log.read_text()}")


def replica_that_logged_an_experiment(root: Path) -> int:
    """Which replica (0 or 1) wrote the experiment's event line: the one that holds that visitor's session."""
    logged = [n for n in (0, 1) if '"event": "experiment"' in (root / f"replica-{n + 1}" / "streamlit.log").read_text()]
    assert len(logged) == 1, f"replicas {logged} logged the one experiment"
    return logged[0]


def import_at_once(browser, url: str, exports: dict[Path, str]) -> None:
    """New visitors, all at once, each import an export on the History page and see its answer: each upload reached
    the replica that holds its session."""
    pages = {browser.new_page(viewport={"width": 1400, "height": 1200}): export for export in exports}
    for page in pages:  # the loads overlap: one after the other takes a few seconds more each
        page.goto(url + "/history", wait_until="commit")
    for page, export in pages.items():
        page.get_by_text("Import a JSON export").wait_for(timeout=60_000)
        settle(page)
        page.locator("input[type=file]").set_input_files(export)
    for page, export in pages.items():
        page.wait_for_url(re.compile("experiment="), timeout=20_000)
        page.get_by_text(exports[export]).first.wait_for(timeout=20_000)
        page.close()


def load_until_the_app_shows(page, url: str, deadline: float) -> None:
    """Load the Experiment page until its Run button shows, which needs the WebSocket, then close the page."""
    for attempt in itertools.count(1):
        with contextlib.suppress(BrowserError):
            page.goto(url + "/experiment")
            page.get_by_role("button", name="Run", exact=True).wait_for(timeout=10_000)
            page.close()
            return
        assert time.monotonic() < deadline, f"no app through the proxy after {attempt} loads"
        time.sleep(0.5)


@pytest.mark.parametrize("kind", ["caddy", "nginx"])
def test_the_readme_proxy_runs_sticks_uploads_and_survives_a_stopped_replica(kind, fake_server, replica_env, browser,
                                                                           tmp_path):
    with replicas(tmp_path, replica_env) as started:
        both = [started.start(), started.start()]
        with proxy(kind, tmp_path / kind, [url.removeprefix("http://") for url, _ in both]) as url:
            page = experiment_page(browser, url, 5)
            assert "5 of 5 identical" in run(page)

            answers = [f"Visitor {visitor}'s red panda slept." for visitor in range(VISITORS)]
            import_at_once(browser, url, {export_with_answer(tmp_path / f"{n}.json", answer): answer
                                          for n, answer in enumerate(answers)})

            both[replica_that_logged_an_experiment(tmp_path)][1].close()
            deadline = time.monotonic() + 40
            load_until_the_app_shows(page, url, deadline)  # a reload: Caddy's cookie still names the stopped replica
            load_until_the_app_shows(browser.new_page(), url, deadline)  # a new visitor
    assert len(fake_server.received) == 5
