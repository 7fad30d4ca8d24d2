"""The per-worker cache of verified JWTs against a real nginx (master + 2
workers): a cached token is still refused once it expired, a token verified
in one location is not accepted by another with another key or issuer,
`realtime_auth_jwt_cache off` verifies every time, and a reconnect storm of
repeating tokens (forged ones among them) gives every connection its own
identity. What the cache did is read from `$realtime_jwt_cache` in an access
log (HIT, MISS, BYPASS), with the worker's pid."""

import json
import re
import threading
import time
from collections import Counter, defaultdict
from types import SimpleNamespace

import pytest

from groups_util import close_ws
from jwt_util import claims, make_token, new_secret, write_file
from nginx_harness import wait_for
from wsclient import OP_TEXT, assert_json_error, handshake

ISSUER = "https://other.test"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("jwtcachekeys")
    d.chmod(0o755)
    k = SimpleNamespace(dir=d, a=new_secret(), b=new_secret())
    write_file(d / "a.secret", k.a)
    write_file(d / "b.secret", k.b)
    return k


def snippet(keys):
    d = keys.dir

    def loc(path, key, *extra):
        lines = [f"location = {path} {{", "    realtime_websocket;",
                 f"    realtime_auth_jwt_key_file {d}/{key};",
                 "    realtime_subscribe u_$realtime_user;", "    access_log logs/jc.log jc;"]
        lines += ["    " + e for e in extra]
        return "\n".join("        " + line for line in lines + ["}"])

    locs = [
        loc("/a", "a.secret"),
        loc("/b", "b.secret"),  # another key
        loc("/iss", "a.secret", f"realtime_auth_jwt_issuer {ISSUER};"),  # another issuer
        loc("/off", "a.secret", "realtime_auth_jwt_cache off;"),
        loc("/echo", "a.secret", "realtime_echo on;"),
    ]
    return f"""
    realtime_zone rt 4m;
    log_format jc '$pid $status "$realtime_jwt_cache" "$realtime_user" "$arg_step"';

    server {{
        listen {{port}};
        realtime_ping_interval 0;
        realtime_auth_jwt $arg_token;
        realtime_auth_jwt_cache 1000;

        location = /publish {{
            realtime_publish;
        }}

{chr(10).join(locs)}
    }}
"""


@pytest.fixture
def ngx(nginx_factory, keys):
    return nginx_factory(snippet(keys))


# --------------------------------------------------------------------------
# helpers


def log(ngx):
    """[(pid, status, cache, user, step)] from the locations' access log."""
    try:
        text = (ngx.prefix / "logs" / "jc.log").read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        m = re.match(r'(\d+) (\d+) "([^"]*)" "([^"]*)" "([^"]*)"$', line)
        assert m, line
        out.append((int(m.group(1)), int(m.group(2)), m.group(3), m.group(4), m.group(5)))
    return out


def entries(ngx, step, n):
    """The n log lines of step (waits for them: a 101 is logged at close)."""
    assert wait_for(lambda: len([e for e in log(ngx) if e[4] == step]) >= n, 5), \
        f"step {step}: {[e for e in log(ngx) if e[4] == step]}"
    got = [e for e in log(ngx) if e[4] == step]
    assert len(got) == n, got
    return got


def workers(ngx):
    w = set(ngx.worker_pids(shutting_down=False))
    assert len(w) == 2
    return w


def warm(ngx, path, token, step):
    """Connects with token until every worker holds two of its connections
    (the first verifies, the second must hit), closes them, and checks that
    every worker logged a HIT. Returns the log lines."""
    w = workers(ngx)
    per = Counter()
    conns = []
    for _ in range(200):
        if all(per[p] >= 2 for p in w):
            break
        resp, ws = handshake(ngx.port, f"{path}?token={token}&step={step}")
        assert resp.status == 101, (resp.status, resp.body)
        pid = ngx.worker_of(ws.sock)
        per[pid] += 1
        conns.append(ws)
    assert all(per[p] >= 2 for p in w), f"connections per worker: {dict(per)}"
    for ws in conns:
        close_ws(ws)
    got = entries(ngx, step, len(conns))
    hits = {pid for pid, status, cache, _u, _s in got if cache == "HIT" and status == 101}
    assert hits == w, f"HIT on {hits} of {w}: {got}"
    return got


def refused_on_every_worker(ngx, path, token, step, reason):
    """Handshakes with token until both workers have refused it (each
    attempt must be a 401 with reason)."""
    w = workers(ngx)
    n = 0
    for _ in range(200):
        resp, ws = handshake(ngx.port, f"{path}?token={token}&step={step}")
        assert ws is None, f"{path}: a token that must be refused got 101 (attempt {n + 1})"
        assert_json_error(resp, 401, reason)
        n += 1
        wait_for(lambda: len([e for e in log(ngx) if e[4] == step]) >= n, 5)
        if {e[0] for e in log(ngx) if e[4] == step} >= w:
            break
    got = entries(ngx, step, n)
    assert {e[0] for e in got} == w, f"refused only by {set(e[0] for e in got)}: {got}"
    assert all(e[1] == 401 and e[2] in ("MISS", "BYPASS") for e in got), got
    return got


# --------------------------------------------------------------------------
# exp is checked at every hit


def test_cached_token_refused_once_expired(ngx, keys):
    c = claims("short", ttl=4)
    token = make_token("HS256", keys.a, c)
    warm(ngx, "/a", token, "warm")
    assert time.time() < c["exp"], "too slow: the token expired while warming the cache"

    # past exp (nginx's clock ticks at least once a second): no worker may
    # take it from its cache any longer
    time.sleep(max(0.0, c["exp"] + 1.2 - time.time()))
    refused_on_every_worker(ngx, "/a", token, "late", "token expired")

    # a fresh token of the same subject is verified and cached again
    warm(ngx, "/a", make_token("HS256", keys.a, claims("short", ttl=60)), "fresh")


# --------------------------------------------------------------------------
# a location's cache holds what its own keys and policy verified


def test_token_verified_in_one_location_not_accepted_by_another(ngx, keys):
    token = make_token("HS256", keys.a, claims("scoped"))
    warm(ngx, "/a", token, "warm-a")
    refused_on_every_worker(ngx, "/b", token, "other-key", "bad signature")
    refused_on_every_worker(ngx, "/iss", token, "other-issuer", "wrong issuer")

    # the other way round: a token of the issuer /iss wants, cached there,
    # is still checked against /b's key
    token2 = make_token("HS256", keys.a, claims("scoped2", iss=ISSUER))
    warm(ngx, "/iss", token2, "warm-iss")
    refused_on_every_worker(ngx, "/b", token2, "other-key-2", "bad signature")

    # and /a still hits (refusals elsewhere evicted nothing of it)
    warm(ngx, "/a", token, "again-a")


# --------------------------------------------------------------------------
# realtime_auth_jwt_cache off


def test_cache_off_verifies_every_time(ngx, keys):
    token = make_token("HS256", keys.a, claims("nocache"))
    w = workers(ngx)
    per = Counter()
    conns = []
    for _ in range(200):
        if all(per[p] >= 3 for p in w):
            break
        resp, ws = handshake(ngx.port, f"/off?token={token}&step=off")
        assert resp.status == 101, (resp.status, resp.body)
        per[ngx.worker_of(ws.sock)] += 1
        conns.append(ws)
    for ws in conns:
        close_ws(ws)
    got = entries(ngx, "off", len(conns))
    assert {e[2] for e in got} == {"BYPASS"}, got
    assert {e[3] for e in got} == {"nocache"}, got

    # the same token in a location with the cache: it hits there
    warm(ngx, "/a", token, "on")

    # and a bad token in /off is refused as usual
    forged = make_token("HS256", keys.b, claims("nocache"))
    refused_on_every_worker(ngx, "/off", forged, "off-forged", "bad signature")


# --------------------------------------------------------------------------
# a reconnect storm with repeating tokens


def test_reconnect_storm_with_repeating_tokens(ngx, keys):
    subjects = [f"s{i}" for i in range(20)]
    good = {s: make_token("HS256", keys.a, claims(s)) for s in subjects}
    # the same header and claims under another key: never let in, whatever
    # the cache holds for the genuine token
    forged = {s: make_token("HS256", keys.b, claims(s)) for s in subjects}
    for s in subjects:
        assert forged[s].rsplit(".", 1)[0] == good[s].rsplit(".", 1)[0]

    plan = []  # (step, subject, genuine): 15 rounds over the subjects, every
    # 4th of them forged (once the genuine tokens are in both caches)
    for i in range(300):
        s = subjects[i % len(subjects)]
        plan.append((f"st{i}", s, (i // len(subjects)) % 4 != 2))
    errors = []
    lock = threading.Lock()
    queue = list(plan)

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                step, s, genuine = queue.pop(0)
            try:
                tok = good[s] if genuine else forged[s]
                resp, ws = handshake(ngx.port, f"/a?token={tok}&step={step}")
                if genuine:
                    if resp.status != 101:
                        errors.append((step, resp.status, resp.body))
                        continue
                    close_ws(ws)
                elif ws is not None or resp.status != 401:
                    errors.append((step, "forged token got", resp.status))
                    if ws is not None:
                        close_ws(ws)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((step, repr(e)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:10]

    assert wait_for(lambda: len([e for e in log(ngx) if e[4].startswith("st")]) >= len(plan), 10)
    by_step = {e[4]: e for e in log(ngx) if e[4].startswith("st")}
    assert len(by_step) == len(plan)
    cache = Counter()
    for step, s, genuine in plan:
        pid, status, c, user, _ = by_step[step]
        if genuine:
            assert (status, user) == (101, s), (step, by_step[step])
            cache[c] += 1
        else:
            assert status == 401 and c == "MISS", (step, by_step[step])
    # each genuine token is verified at most once per worker, then hit
    assert cache["MISS"] <= len(subjects) * 2, cache
    assert cache["HIT"] == sum(g for _s, _u, g in plan) - cache["MISS"], cache
    assert cache["HIT"] >= 150, cache


# --------------------------------------------------------------------------
# the in-band refresh verifies through the same cache


def _recv_json(ws, timeout=5):
    f = ws.recv_data(timeout=timeout)
    assert f.opcode == OP_TEXT, f
    return json.loads(f.payload)


def test_refresh_through_the_cache(ngx, keys):
    first = make_token("HS256", keys.a, claims("rf", ttl=600))
    resp, ws = handshake(ngx.port, f"/echo?token={first}&step=rf")
    assert resp.status == 101
    c2 = claims("rf", ttl=1200)
    newer = make_token("HS256", keys.a, c2)
    for _ in range(3):  # the first verifies it, the others find it cached
        ws.send_text(json.dumps({"type": "refresh", "token": newer}))
        assert _recv_json(ws) == {"type": "refresh", "ok": True, "exp": c2["exp"]}
    # a forged token with the same claims is refused although newer is cached
    forged = make_token("HS256", keys.b, c2)
    ws.send_text(json.dumps({"type": "refresh", "token": forged}))
    assert _recv_json(ws) == {"type": "refresh", "ok": False, "error": "bad signature"}
    # an expired token is refused (never cached), the connection stays
    old = make_token("HS256", keys.a, {"sub": "rf", "exp": int(time.time()) - 5})
    ws.send_text(json.dumps({"type": "refresh", "token": old}))
    assert _recv_json(ws) == {"type": "refresh", "ok": False, "error": "token expired"}
    ws.send_text("still here")
    assert ws.recv_data(timeout=5).payload == b"still here"
    close_ws(ws)


# --------------------------------------------------------------------------
# the directive (nginx -t)


def test_directive_values(keys):
    from groups_util import nginx_test_config

    def t(value, where="location"):
        inner = f"realtime_auth_jwt_cache {value};" if where == "location" else ""
        outer = f"realtime_auth_jwt_cache {value};" if where == "http" else ""
        return nginx_test_config(f"""
    realtime_zone rt 4m;
    {outer}
    server {{
        listen {{port}};
        location = /ws {{
            realtime_websocket;
            realtime_auth_jwt $arg_token;
            realtime_auth_jwt_key_file {keys.dir}/a.secret;
            {inner}
        }}
    }}
""")

    for ok in ("1", "10000", "1000000", "off"):
        for where in ("location", "http"):
            rc, out = t(ok, where)
            assert rc == 0, (ok, where, out)
    for bad in ("0", "-1", "abc", "10k", "1000001"):
        rc, out = t(bad)
        assert rc != 0 and 'invalid "realtime_auth_jwt_cache"' in out, (bad, out)
    rc, out = t("10; realtime_auth_jwt_cache 20")
    assert rc != 0 and "is duplicate" in out, out
