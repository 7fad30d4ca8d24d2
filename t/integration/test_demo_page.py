"""The demo page in a real headless Chromium: it connects its WebSocket to
nginx, and a message published with the HTTP API shows up on the page."""

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from nginx_harness import MODULE, REPO, pick_port, wait_for

selenium = pytest.importorskip("selenium", reason="python3-selenium is needed (make test installs it)")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture
def demo_server():
    """nginx running conf-examples/demo.conf, as `make run` does, on a free port."""
    prefix = Path(tempfile.mkdtemp(prefix="rt-demo-"))
    for d in ("conf", "logs", "tmp"):
        (prefix / d).mkdir()
    port = pick_port()
    conf = (REPO / "conf-examples" / "demo.conf").read_text()
    conf = (conf.replace("@MODULE@", str(MODULE)).replace("@PREFIX@", str(prefix))
            .replace("@HTML@", str(REPO / "demo")).replace("127.0.0.1:8080", f"127.0.0.1:{port}"))
    (prefix / "conf" / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(["/usr/sbin/nginx", "-p", str(prefix), "-c", str(prefix / "conf" / "nginx.conf")],
                            stderr=subprocess.PIPE)
    def up():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            return True
        except OSError:
            return False
    assert wait_for(up, 10), "demo nginx did not start"
    yield port, prefix
    proc.send_signal(3)  # SIGQUIT: graceful
    proc.wait(10)
    log = (prefix / "logs" / "error.log").read_text()
    assert "[alert]" not in log and "[crit]" not in log and "exited on signal" not in log, log
    shutil.rmtree(prefix, ignore_errors=True)


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
    req = urllib.request.Request(f"http://127.0.0.1:{port}/publish", method="POST",
                                 data=json.dumps({"group": group, "data": data}).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=5).read())


def test_page_shows_live_messages(demo_server, browser):
    port, _prefix = demo_server
    browser.get(f"http://127.0.0.1:{port}/")
    assert wait_for(lambda: browser.find_element(By.ID, "state").text == "open", 15), \
        "page never reached state open: " + browser.find_element(By.ID, "state").text

    # the page's socket is counted in the zone, whichever worker holds it
    info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/publish?group=room_lobby").read())
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
    port, prefix = demo_server
    browser.get(f"http://127.0.0.1:{port}/")
    assert wait_for(lambda: browser.find_element(By.ID, "state").text == "open", 15)
    subprocess.run(["/usr/sbin/nginx", "-p", str(prefix), "-c", str(prefix / "conf" / "nginx.conf"),
                    "-s", "reload"], check=True)
    # the old worker closes the socket with 1001; the page reconnects to a new one
    assert wait_for(lambda: "code 1001" in browser.find_element(By.ID, "log").text, 15)
    assert wait_for(lambda: browser.find_element(By.ID, "state").text == "open", 15)
    time.sleep(0.2)
    publish(port, "announcements", "after reload")
    assert wait_for(lambda: "after reload" in browser.find_element(By.ID, "log").text, 10)
