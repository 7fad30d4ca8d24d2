"""The demo page, a chat room, in a real headless Chromium: it connects its
WebSocket to nginx under the name typed in the page; two users see each
other online, chat, see each other typing and leaving; messages published
with the HTTP API show up on the page."""

import tempfile

import pytest

from groups_util import count, http, publish as publish_api
from nginx_harness import example_snippet, wait_for

selenium = pytest.importorskip("selenium", reason="python3-selenium is needed (make test installs it)")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402


@pytest.fixture
def demo_server(nginx_factory):
    """The harness's nginx running conf-examples/demo.conf, as `make run`
    does, on a free port (the error log is checked at teardown)."""
    snippet, ports = example_snippet("demo.conf")
    assert list(ports.values()) == ["port"], ports
    ngx = nginx_factory(snippet)
    return ngx.port, ngx


def new_browser():
    """A headless Chromium with a profile of its own (its own localStorage)."""
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    opts.add_argument("--user-data-dir=" + tempfile.mkdtemp(prefix="rt-chromium-"))
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


@pytest.fixture
def browser():
    driver = new_browser()
    yield driver
    driver.quit()


@pytest.fixture
def browsers():
    """new() -> another browser; all are quit at teardown (again is harmless)."""
    drivers = []

    def new():
        drivers.append(new_browser())
        return drivers[-1]

    yield new
    for d in drivers:
        try:
            d.quit()
        except Exception:  # already quit by the test
            pass


def publish(port, group, data):
    return publish_api(port, {"group": group, "data": data}).json()


def text(browser, element_id):
    return browser.find_element(By.ID, element_id).text


def texts(browser, selector):
    """The visible texts of the elements matching selector, read in one go in
    the page (the page re-renders its lists: element handles kept across two
    calls may be gone)."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText.trim())",
        selector)


def users(browser):
    return sorted(texts(browser, "#users li"))


def log_has(browser, needle):
    return any(needle in t for t in texts(browser, "#log li"))


def join(browser, port, name, room="lobby"):
    """Opens the page, types the name (and room) and joins; waits for the
    socket to be open and the room's presence list to show the user."""
    browser.get(f"http://127.0.0.1:{port}/")
    for field, value in (("name", name), ("room", room)):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "connect").click()
    assert wait_for(lambda: text(browser, "state") == "open", 15), \
        f"{name}: page never reached state open: {text(browser, 'state')} {text(browser, 'info')}"
    assert wait_for(lambda: name + " (you)" in users(browser), 10), users(browser)


def test_page_shows_live_messages(demo_server, browser):
    port, _ngx = demo_server
    browser.get(f"http://127.0.0.1:{port}/")
    # no name yet: the page asks for one and does not connect
    assert text(browser, "state") == "idle"
    browser.find_element(By.ID, "name").send_keys("not a name!")
    browser.find_element(By.ID, "connect").click()
    assert "pick a name" in text(browser, "info") and text(browser, "state") == "idle"

    join(browser, port, "alice")
    assert wait_for(lambda: log_has(browser, "welcome alice, you are in room lobby"), 10)
    # the app ping's answer came back from the worker
    assert wait_for(lambda: text(browser, "ping").endswith(" ms"), 10), text(browser, "ping")

    # the page's socket is counted in the zone, whichever worker holds it
    info = http(port, "GET", "/publish?group=room_lobby").json()
    assert info == {"group": "room_lobby", "subscribers": 1}
    pres = http(port, "GET", "/publish?presence=room_lobby").json()
    assert pres == {"group": "room_lobby", "count": 1,
                    "users": [{"user": "alice", "info": None, "connections": 1}]}

    result = publish(port, "room_lobby", {"text": "from the app"})
    assert result == {"messages": 1, "subscribers": 1}
    assert wait_for(lambda: '{"text":"from the app"}' in text(browser, "log"), 10)
    # the app may speak in the room the way the users do
    publish(port, "room_lobby", {"type": "chat_message", "sender": "app", "message": "hi all"})
    assert wait_for(lambda: log_has(browser, "app: hi all"), 10)

    # the page's own Publish box goes through the same API
    browser.find_element(By.ID, "text").clear()
    browser.find_element(By.ID, "text").send_keys("typed in the page")
    browser.find_element(By.ID, "publish").click()
    assert wait_for(lambda: "typed in the page" in text(browser, "log"), 10)
    assert wait_for(lambda: text(browser, "published").startswith("200 "), 5)

    # the name is remembered: a new visit joins at once
    browser.get(f"http://127.0.0.1:{port}/")
    assert browser.find_element(By.ID, "name").get_attribute("value") == "alice"
    assert wait_for(lambda: text(browser, "state") == "open", 15)
    assert wait_for(lambda: users(browser) == ["alice (you)"], 10), users(browser)


def test_page_reconnects_after_reload(demo_server, browser):
    port, ngx = demo_server
    join(browser, port, "alice")
    ngx.reload()
    # the old worker closes the socket with 1012 (service restart); the page
    # reconnects to a new one
    assert wait_for(lambda: "code 1012" in text(browser, "log"), 15)
    assert wait_for(lambda: text(browser, "state") == "open", 15)
    # the new socket has joined its groups (not only opened) before publishing
    assert wait_for(lambda: count(port, "announcements") == 1, 10)
    publish(port, "announcements", "after reload")
    assert wait_for(lambda: "after reload" in text(browser, "log"), 10)
    # and the presence list is back (asked for again on connect)
    assert wait_for(lambda: users(browser) == ["alice (you)"], 10), users(browser)


def test_two_users_chat(demo_server, browsers):
    port, _ngx = demo_server
    alice, bob = browsers(), browsers()
    join(alice, port, "alice")
    join(bob, port, "bob")

    # both see both: bob from the answer to his query, alice from bob's join event
    assert wait_for(lambda: users(alice) == ["alice (you)", "bob"], 10), users(alice)
    assert wait_for(lambda: users(bob) == ["alice", "bob (you)"], 10), users(bob)
    assert wait_for(lambda: log_has(alice, "bob joined the room"), 10)

    # alice types: bob sees the indicator, alice does not see her own
    box = alice.find_element(By.ID, "message")
    box.send_keys("hello b")
    assert wait_for(lambda: text(bob, "typing") == "alice is typing…", 10), text(bob, "typing")
    assert text(alice, "typing") == ""

    # alice sends: bob gets it with her name (stamped by the server), which
    # ends her typing indicator; alice's page shows her own line once
    box.send_keys("ob", Keys.ENTER)
    assert wait_for(lambda: log_has(bob, "alice: hello bob"), 10), text(bob, "log")
    assert wait_for(lambda: text(bob, "typing") == "", 5), text(bob, "typing")
    assert texts(alice, "#log li.me") == ["alice: hello bob"]

    # and back
    bob.find_element(By.ID, "message").send_keys("hi alice")
    bob.find_element(By.ID, "send").click()
    assert wait_for(lambda: log_has(alice, "bob: hi alice"), 10), text(alice, "log")

    # the app's messages still reach both
    assert publish(port, "room_lobby", {"text": "from the app"}) == {"messages": 1, "subscribers": 2}
    for b in (alice, bob):
        assert wait_for(lambda: '{"text":"from the app"}' in text(b, "log"), 10)

    # bob closes his browser: his leave event (after the 2 s leave_delay)
    # takes him off alice's list
    bob.quit()
    assert wait_for(lambda: users(alice) == ["alice (you)"], 15), users(alice)
    assert log_has(alice, "bob left the room")
    assert http(port, "GET", "/publish?presence=room_lobby").json()["count"] == 1
