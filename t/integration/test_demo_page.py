"""The demo page in a real headless Chromium: it connects its WebSocket to
nginx, and a message published with the HTTP API shows up on the page."""

import tempfile

import pytest

from groups_util import count, http, publish as publish_api
from nginx_harness import example_snippet, wait_for

selenium = pytest.importorskip("selenium", reason="python3-selenium is needed (make test installs it)")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture
def demo_server(nginx_factory):
    """The harness's nginx running conf-examples/demo.conf, as `make run`
    does, on a free port (the error log is checked at teardown)."""
    snippet, ports = example_snippet("demo.conf")
    assert list(ports.values()) == ["port"], ports
    ngx = nginx_factory(snippet)
    return ngx.port, ngx


@pytest.fixture
def browser():
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    opts.add_argument("--user-data-dir=" + tempfile.mkdtemp(prefix="rt-chromium-"))
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    yield driver
    driver.quit()


def publish(port, group, data):
    return publish_api(port, {"group": group, "data": data}).json()


def test_page_shows_live_messages(demo_server, browser):
    port, _ngx = demo_server
    browser.get(f"http://127.0.0.1:{port}/")
    assert wait_for(lambda: browser.find_element(By.ID, "state").text == "open", 15), \
        "page never reached state open: " + browser.find_element(By.ID, "state").text

    # the page's socket is counted in the zone, whichever worker holds it
    info = http(port, "GET", "/publish?group=room_lobby").json()
    assert info == {"group": "room_lobby", "subscribers": 1}

    result = publish(port, "room_lobby", {"text": "from the app"})
    assert result == {"messages": 1, "subscribers": 1}
    assert wait_for(lambda: '{"text":"from the app"}' in browser.find_element(By.ID, "log").text, 10)

    # the page's own Publish box goes through the same API
    browser.find_element(By.ID, "text").clear()
    browser.find_element(By.ID, "text").send_keys("typed in the page")
    browser.find_element(By.ID, "publish").click()
    assert wait_for(lambda: "typed in the page" in browser.find_element(By.ID, "log").text, 10)
    assert wait_for(lambda: browser.find_element(By.ID, "published").text.startswith("200 "), 5)


def test_page_reconnects_after_reload(demo_server, browser):
    port, ngx = demo_server
    browser.get(f"http://127.0.0.1:{port}/")
    assert wait_for(lambda: browser.find_element(By.ID, "state").text == "open", 15)
    ngx.reload()
    # the old worker closes the socket with 1001; the page reconnects to a new one
    assert wait_for(lambda: "code 1001" in browser.find_element(By.ID, "log").text, 15)
    assert wait_for(lambda: browser.find_element(By.ID, "state").text == "open", 15)
    # the new socket has joined its groups (not only opened) before publishing
    assert wait_for(lambda: count(port, "announcements") == 1, 10)
    publish(port, "announcements", "after reload")
    assert wait_for(lambda: "after reload" in browser.find_element(By.ID, "log").text, 10)
