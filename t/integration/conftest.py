"""Fixtures for the integration tests: private nginx instances, a TLS
certificate, and the error-log check every test gets at teardown."""

import ssl
import subprocess

import pytest

import wsclient
from nginx_harness import MODULE, Nginx

_INSTANCES_KEY = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """(cert, key) paths of a self-signed certificate for localhost/127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")
    d.chmod(0o755)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    key.chmod(0o644)
    return cert, key


@pytest.fixture(scope="session")
def client_ssl_context(tls_cert):
    """A client context that trusts (only) the test certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls_cert[0]))
    ctx.check_hostname = True
    return ctx


@pytest.fixture
def nginx_factory(request):
    """start(snippet, workers=2, **kw) -> a running Nginx.

    At teardown, client sockets still open are closed, every nginx gets a
    graceful SIGQUIT, and the test fails if an error log holds [alert],
    [emerg], [crit], "exited on signal" or "core dumped", or if nginx did
    not shut down by itself.
    """
    instances = []
    request.node.stash[_INSTANCES_KEY] = instances

    def start(snippet, workers=2, **kw):
        if "cert" not in kw and ("{cert}" in snippet or "{key}" in snippet):
            kw["cert"], kw["key"] = request.getfixturevalue("tls_cert")
        n = Nginx(snippet, workers=workers, **kw)
        instances.append(n)
        return n.start()

    yield start

    wsclient.close_all()
    problems = []
    for n in instances:
        if n.proc is not None:
            n.stop()
        problems += n.problems
        bad = n.bad_log_lines()
        if bad:
            problems.append("error log of %s has:\n  %s" % (n.prefix, "\n  ".join(bad)))
    failed = problems or getattr(request.node, "rep_call_failed", False)
    for n in instances:
        if not failed:
            n.cleanup()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        item.rep_call_failed = True
        for n in item.stash.get(_INSTANCES_KEY, []):
            tail = "\n".join(n.error_log().splitlines()[-40:])
            rep.sections.append((f"nginx error.log tail ({n.prefix})", tail))


def pytest_sessionstart(session):
    if not MODULE.exists():
        # Not a skip: the suite must fail loudly when the module was not built.
        print(f"\nWARNING: {MODULE} does not exist; run `make module` first")
