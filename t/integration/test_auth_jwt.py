"""JWT-authenticated handshakes against a real nginx (master + 2 workers):
every algorithm with every key form, key rotation, the classic attacks
(each refused with 401), algorithm narrowing, leeway, issuer/audience,
claims as group names (one user never gets another's messages), array
claims, expiry of a live connection (4003) and in-band refresh, the
per-user connection limit across workers, the token sources (query,
cookie, Authorization header, subprotocol), and that a token never
reaches the logs.

Every key and token is generated here (openssl CLI, Python hmac)."""

import json
import re
import threading
import time
from types import SimpleNamespace

import pytest

from groups_util import close_ws, count, expect_nothing_more, nginx_test_config, next_text, publish, \
    spread_subscribers, wait_count
from jwt_util import (ALL_ALGS, HMAC_ALGS, RSA_ALGS, KeyPair, b64u, b64u_json, claims, make_token,
                      new_secret, signature_of, unsigned_token, write_file, write_jwks)
from nginx_harness import wait_for
from wsclient import OP_CLOSE, OP_TEXT, assert_json_error, handshake

WWW_AUTH = 'Bearer error="invalid_token"'


# --------------------------------------------------------------------------
# keys (once per module) and the nginx configuration


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("jwtkeys")
    d.chmod(0o755)
    k = SimpleNamespace(dir=d)
    k.secret = new_secret()
    write_file(d / "hs.secret", k.secret + "\n")  # one trailing newline is not part of it
    k.secret2 = new_secret()
    write_file(d / "hs2.secret", k.secret2)
    k.oct = new_secret(64)
    write_jwks(d / "hs.jwks", {"kty": "oct", "kid": "hk", "k": b64u(k.oct), "use": "sig"})

    k.rsa = KeyPair(d, "rsa", "rsa")
    k.rsa2 = KeyPair(d, "rsa", "rsa2")
    k.p256 = KeyPair(d, "p256", "p256")
    k.p384 = KeyPair(d, "p384", "p384")
    k.ed = KeyPair(d, "ed25519", "ed")
    k.ed2 = KeyPair(d, "ed25519", "ed2")
    write_jwks(d / "rsa.jwks", k.rsa.jwk(kid="rk", use="sig"),
               k.rsa2.jwk(kid="enc-key", use="enc"))  # an encryption key is skipped
    write_jwks(d / "p256.jwks", k.p256.jwk(kid="ek256"))
    write_jwks(d / "p384.jwks", k.p384.jwk(kid="ek384"))
    write_file(d / "ed.jwk", json.dumps(k.ed.jwk(kid="okp")))  # a single JWK, not a set

    # rotation: the old and the new key in two files
    write_jwks(d / "rot-2023.jwks", k.rsa.jwk(kid="2023"))
    write_jwks(d / "rot-2024.jwks", k.rsa2.jwk(kid="2024"))
    return k


# name -> (key files, algorithms it verifies, kid of the JWKS key or None)
KEY_FORMS = {
    "hs-secret": (["hs.secret"], HMAC_ALGS, None),
    "hs-jwks": (["hs.jwks"], HMAC_ALGS, "hk"),
    "rsa-pem": (["rsa.pub.pem"], RSA_ALGS, None),
    "rsa-jwks": (["rsa.jwks"], RSA_ALGS, "rk"),
    "p256-pem": (["p256.pub.pem"], ("ES256",), None),
    "p256-jwks": (["p256.jwks"], ("ES256",), "ek256"),
    "p384-pem": (["p384.pub.pem"], ("ES384",), None),
    "p384-jwks": (["p384.jwks"], ("ES384",), "ek384"),
    "ed-pem": (["ed.pub.pem"], ("EdDSA",), None),
    "ed-jwk": (["ed.jwk"], ("EdDSA",), "okp"),
}


def signer(keys, form):
    """The private key (or secret) behind a KEY_FORMS entry."""
    return {"hs-secret": keys.secret, "hs-jwks": keys.oct, "rsa-pem": keys.rsa, "rsa-jwks": keys.rsa,
            "p256-pem": keys.p256, "p256-jwks": keys.p256, "p384-pem": keys.p384,
            "p384-jwks": keys.p384, "ed-pem": keys.ed, "ed-jwk": keys.ed}[form]


def location(path, key_files, *extra, keydir):
    lines = [f"location = {path} {{", "    realtime_websocket;"]
    lines += [f"    realtime_auth_jwt_key_file {keydir}/{f};" for f in key_files]
    lines += ["    " + e for e in extra]
    if not any(e.startswith("realtime_subscribe") for e in extra):
        lines.append("    realtime_subscribe u_$realtime_user;")
    lines.append("    access_log logs/rt.log rt;")
    lines.append("}")
    return "\n".join("        " + line for line in lines)


def snippet(keys, rotation_files=("rot-2023.jwks", "rot-2024.jwks", "hs.secret", "hs2.secret")):
    d = keys.dir
    locs = [location(f"/k/{name}", files, keydir=d) for name, (files, _a, _k) in KEY_FORMS.items()]
    locs += [
        location("/rotate", rotation_files, keydir=d),
        location("/mixed", ["rsa.pub.pem", "hs.secret"], keydir=d),
        location("/narrow", ["rsa.pub.pem", "p256.pub.pem", "hs.secret"],
                 "realtime_auth_jwt_algorithms RS256 ES256;", keydir=d),
        location("/leeway", ["hs.secret"], "realtime_auth_jwt_leeway 30s;", keydir=d),
        location("/strict", ["hs.secret"], "realtime_auth_jwt_issuer https://issuer.test;",
                 "realtime_auth_jwt_audience rt-api;", keydir=d),
        location("/sources", ["hs.secret"],
                 "realtime_auth_jwt $arg_token $cookie_access_token $http_authorization;", keydir=d),
        location("/proto", ["hs.secret"], "realtime_auth_jwt $realtime_protocol_token;",
                 "realtime_subprotocols chat.v1 chat.v2;", keydir=d),
        location("/claims", ["hs.secret"],
                 "realtime_subscribe user_${jwt_claim_sub}_notifications;", keydir=d),
        location("/arrays", ["hs.secret"],
                 "realtime_subscribe $jwt_claim_groups ${jwt_claim_rooms} team_$jwt_claim_team;",
                 keydir=d),
        location("/user", ["hs.secret"], "realtime_user ${jwt_claim_tenant}.${jwt_claim_sub};",
                 keydir=d),
        location("/vars", ["hs.jwks"], "add_header X-Sub $jwt_claim_sub always;",
                 "add_header X-Kid $jwt_header_kid always;",
                 "add_header X-Email $jwt_claim_email always;",
                 "add_header X-Roles $jwt_claim_roles always;", keydir=d),
        location("/expiry", ["hs.secret"], "realtime_echo on;", keydir=d),
        location("/limit", ["hs.secret"], "realtime_max_connections_per_user 2;", keydir=d),
    ]
    return f"""
    realtime_zone rt 4m;
    log_format rt '$pid $status "$realtime_user"';

    server {{
        listen {{port}};
        large_client_header_buffers 4 64k;
        realtime_ping_interval 0;

        # every WebSocket location below inherits these two
        realtime_auth_jwt $arg_token;
        realtime_auth_jwt_key_file {d}/hs.secret;

        location = /publish {{
            realtime_publish;
        }}

        location = /open {{
            realtime_websocket;
            realtime_auth_jwt off;
            realtime_subscribe open_room;
        }}

        location = /inherited {{
            realtime_websocket;
            realtime_subscribe u_$realtime_user;
        }}

{chr(10).join(locs)}
    }}
"""


@pytest.fixture
def ngx(nginx_factory, keys):
    return nginx_factory(snippet(keys))


# --------------------------------------------------------------------------
# helpers


def connect(port, path, token, **kw):
    """A handshake with ?token= that must succeed: the WS."""
    resp, ws = handshake(port, f"{path}?token={token}", **kw)
    assert resp.status == 101, f"{path}: expected 101, got {resp.status} {resp.body!r}"
    return ws


def assert_refused(resp, reason=None, status=401):
    doc = assert_json_error(resp, status, reason)
    assert set(doc) == {"error"}, doc
    if status == 401:
        # RFC 6750 3.1: no error code when the request carried no token
        expected = "Bearer" if doc["error"] == "no token" else WWW_AUTH
        assert resp.header("WWW-Authenticate") == expected, resp.headers
    assert resp.header("Upgrade") is None and resp.header("Sec-WebSocket-Accept") is None
    return doc["error"]


def refused(port, path, token, reason=None, **kw):
    resp, ws = handshake(port, f"{path}?token={token}", **kw)
    assert ws is None, f"{path}: a bad token got 101"
    return assert_refused(resp, reason)


def now():
    return int(time.time())


# --------------------------------------------------------------------------
# every algorithm, every key form


@pytest.mark.parametrize("form", list(KEY_FORMS))
def test_valid_tokens_for_every_algorithm(ngx, keys, form):
    _files, algs, kid = KEY_FORMS[form]
    key = signer(keys, form)
    opened = []
    for alg in algs:
        for with_kid in ([False, True] if kid else [False]):
            sub = f"{alg.lower()}-{form}-{'kid' if with_kid else 'nokid'}"
            token = make_token(alg, key, claims(sub), kid=kid if with_kid else None)
            ws = connect(ngx.port, f"/k/{form}", token)
            opened.append(ws)
            # the claims were read: the default identity is "sub"
            assert count(ngx.port, f"u_{sub}") == 1, (alg, form, with_kid)
    # a key form only verifies its own algorithms
    others = [a for a in ALL_ALGS if a not in algs]
    other_key = {"ES256": keys.p256, "ES384": keys.p384, "EdDSA": keys.ed}
    for alg in others:
        k = keys.secret if alg in HMAC_ALGS else keys.rsa if alg in RSA_ALGS else other_key[alg]
        refused(ngx.port, f"/k/{form}", make_token(alg, k, claims("x")))
    for ws in opened:
        close_ws(ws)


def test_inherited_settings_and_off(ngx, keys):
    # realtime_auth_jwt and the key file set at server level apply here
    ws = connect(ngx.port, "/inherited", make_token("HS256", keys.secret, claims("inh")))
    assert count(ngx.port, "u_inh") == 1
    refused(ngx.port, "/inherited", make_token("HS256", keys.secret2, claims("inh")), "bad signature")
    resp, _ = handshake(ngx.port, "/inherited")
    assert_refused(resp, "no token")
    # "realtime_auth_jwt off" turns it off for a location
    resp, ws2 = handshake(ngx.port, "/open")
    assert resp.status == 101
    close_ws(ws)
    close_ws(ws2)


# --------------------------------------------------------------------------
# key rotation


def test_key_rotation_two_key_files(ngx, keys):
    ok = [
        make_token("RS256", keys.rsa, claims("r1"), kid="2023"),
        make_token("RS256", keys.rsa2, claims("r2"), kid="2024"),
        make_token("PS384", keys.rsa2, claims("r3")),  # no kid: every RSA key is tried
        make_token("RS512", keys.rsa, claims("r4")),
        make_token("HS256", keys.secret, claims("h1")),
        make_token("HS512", keys.secret2, claims("h2")),
    ]
    opened = [connect(ngx.port, "/rotate", t) for t in ok]
    # the kid selects the key: the other key's signature does not do
    refused(ngx.port, "/rotate", make_token("RS256", keys.rsa, claims("x"), kid="2024"), "bad signature")
    refused(ngx.port, "/rotate", make_token("RS256", keys.rsa2, claims("x"), kid="2023"), "bad signature")
    refused(ngx.port, "/rotate", make_token("RS256", keys.rsa, claims("x"), kid="2022"),
            "no key with the token's kid for its algorithm")
    refused(ngx.port, "/rotate", make_token("HS256", new_secret(), claims("x")), "bad signature")
    for ws in opened:
        close_ws(ws)

    # retire the old key and secret with a reload: their tokens stop working
    ngx.write_snippet(snippet(keys, rotation_files=("rot-2024.jwks", "hs2.secret")))
    ngx.reload()
    refused(ngx.port, "/rotate", ok[0], "no key with the token's kid for its algorithm")
    refused(ngx.port, "/rotate", ok[3], "bad signature")
    refused(ngx.port, "/rotate", ok[4], "bad signature")
    for t in (ok[1], ok[2], ok[5]):
        close_ws(connect(ngx.port, "/rotate", t))


# --------------------------------------------------------------------------
# attacks: each one is a 401 with the reason, never a 101


def _attack_cases(keys):
    good_rs = make_token("RS256", keys.rsa, claims("victim"))
    h64, p64, s64 = good_rs.split(".")
    good_hs = make_token("HS256", keys.secret, claims("victim"))
    hh, hp, hsig = good_hs.split(".")
    forged_payload = b64u_json(claims("admin"))
    big = make_token("HS256", keys.secret, claims("big", pad="p" * 12500))
    assert len(big) > 16 * 1024
    t = now()
    return [
        ("alg-none", "/k/hs-secret", unsigned_token(claims("admin")), "unsigned token (alg none)"),
        ("alg-none-rsa", "/k/rsa-pem", unsigned_token(claims("admin")), "unsigned token (alg none)"),
        ("alg-none-with-sig", "/k/hs-secret", unsigned_token(claims("admin")) + hsig,
         "unsigned token (alg none)"),
        ("alg-None-case", "/k/hs-secret", unsigned_token(claims("admin"), alg="None"),
         "unsupported algorithm"),
        ("hs256-with-rsa-public-pem", "/k/rsa-pem", make_token("HS256", keys.rsa.pub_pem, claims("admin")),
         "no key for the token's algorithm"),
        ("hs256-with-rsa-public-pem-jwks", "/k/rsa-jwks",
         make_token("HS256", keys.rsa.pub_pem, claims("admin")), "no key for the token's algorithm"),
        ("hs256-with-rsa-public-pem-mixed", "/mixed",
         make_token("HS256", keys.rsa.pub_pem, claims("admin")), "bad signature"),
        ("es256-at-rsa-location", "/k/rsa-pem", make_token("ES256", keys.p256, claims("admin")),
         "no key for the token's algorithm"),
        ("tampered-payload-rs", "/k/rsa-pem", f"{h64}.{forged_payload}.{s64}", "bad signature"),
        ("tampered-payload-hs", "/k/hs-secret", f"{hh}.{forged_payload}.{hsig}", "bad signature"),
        # a kid no key carries falls back to the keys without a kid (a PEM
        # file): the changed header no longer matches the signature
        ("tampered-header", "/k/rsa-pem",
         f"{b64u_json({'alg': 'RS256', 'typ': 'JWT', 'kid': 'x'})}.{p64}.{s64}",
         "bad signature"),
        ("truncated-signature-rs", "/k/rsa-pem", f"{h64}.{p64}.{s64[:-2]}", "bad signature"),
        ("truncated-signature-hs", "/k/hs-secret", f"{hh}.{hp}.{hsig[:-3]}", "bad signature"),
        ("no-signature", "/k/hs-secret", f"{hh}.{hp}.", "malformed token signature"),
        ("bad-base64url-signature", "/k/hs-secret", f"{hh}.{hp}.{hsig}=", "malformed token signature"),
        ("bad-base64url-signature-std-alphabet", "/k/rsa-pem",
         f"{h64}.{p64}.{s64.replace('-', '+').replace('_', '/')}" if ("-" in s64 or "_" in s64)
         else f"{h64}.{p64}.+{s64[1:]}", "malformed token signature"),
        ("bad-base64url-payload", "/k/hs-secret", f"{hh}.{hp}*.{hsig}", "malformed token payload"),
        ("bad-base64url-header", "/k/hs-secret", f"{hh}~.{hp}.{hsig}", "malformed token header"),
        ("wrong-kid", "/k/rsa-jwks", make_token("RS256", keys.rsa, claims("x"), kid="other"),
         "no key with the token's kid for its algorithm"),
        ("kid-of-encryption-key", "/k/rsa-jwks", make_token("RS256", keys.rsa2, claims("x"), kid="enc-key"),
         "no key with the token's kid for its algorithm"),
        ("other-eddsa-key", "/k/ed-pem", make_token("EdDSA", keys.ed2, claims("x")), "bad signature"),
        ("expired", "/k/hs-secret", make_token("HS256", keys.secret, claims("x", ttl=-10)), "token expired"),
        ("expired-now", "/k/hs-secret", make_token("HS256", keys.secret, {"sub": "x", "exp": t - 1}),
         "token expired"),
        ("nbf-in-future", "/k/hs-secret", make_token("HS256", keys.secret, claims("x", nbf=t + 60)),
         "token not valid yet (nbf)"),
        ("exp-not-a-number", "/k/hs-secret", make_token("HS256", keys.secret, {"sub": "x", "exp": str(t + 60)}),
         "exp and nbf must be numbers"),
        ("wrong-iss", "/strict", make_token("HS256", keys.secret,
                                            claims("x", iss="https://evil.test", aud="rt-api")),
         "wrong issuer"),
        ("missing-iss", "/strict", make_token("HS256", keys.secret, claims("x", aud="rt-api")), "wrong issuer"),
        ("wrong-aud", "/strict", make_token("HS256", keys.secret,
                                            claims("x", iss="https://issuer.test", aud="other-api")),
         "wrong audience"),
        ("wrong-aud-array", "/strict", make_token("HS256", keys.secret,
                                                  claims("x", iss="https://issuer.test", aud=["a", "b"])),
         "wrong audience"),
        ("16k-token", "/k/hs-secret", big, "token too long"),
        ("non-json-header", "/k/hs-secret",
         make_token("HS256", keys.secret, claims("x"), raw_header="not json at all"), "malformed token header"),
        ("non-json-payload", "/k/hs-secret",
         make_token("HS256", keys.secret, raw_payload="sub=admin"), "malformed token payload"),
        ("duplicate-claim", "/k/hs-secret",
         make_token("HS256", keys.secret, raw_payload='{"sub":"alice","sub":"admin"}'),
         "malformed token payload"),
        ("crit-header", "/k/hs-secret",
         make_token("HS256", keys.secret, claims("x"), header={"crit": ["exp"]}), "unsupported critical header"),
        ("two-parts", "/k/hs-secret", f"{hh}.{hp}", "malformed token (need header.payload.signature)"),
        ("four-parts", "/k/hs-secret", f"{good_hs}.{hsig}", "malformed token (need header.payload.signature)"),
        ("algorithm-not-allowed", "/narrow", make_token("RS512", keys.rsa, claims("x")), "algorithm not allowed"),
    ]


def test_attacks_are_refused_with_401(ngx, keys):
    """Each case on its own handshake; all failures are reported together."""
    failures = []
    ngx.mark_log()
    cases = _attack_cases(keys)
    for name, path, token, reason in cases:
        try:
            refused(ngx.port, path, token, reason)
        except AssertionError as e:
            failures.append(f"{name}: {e}")
    assert not failures, "\n".join(failures)
    # each refusal is logged at info with its reason
    lines = ngx.log_since_mark().splitlines()
    for name, _path, _token, reason in cases:
        assert any("[info]" in line and f"handshake refused with 401: {reason}," in line
                   for line in lines), (name, reason)


def test_no_token_and_empty_bearer(ngx, keys):
    resp, _ = handshake(ngx.port, "/k/hs-secret")
    assert_refused(resp, "no token")
    resp, _ = handshake(ngx.port, "/k/hs-secret?token=")
    assert_refused(resp, "no token")
    resp, _ = handshake(ngx.port, "/sources", headers=[("Authorization", "Bearer ")])
    assert_refused(resp)  # nginx trims the value to "Bearer": not a token either
    resp, _ = handshake(ngx.port, "/sources", headers=[("Authorization", "Basic YWxpY2U6cHc=")])
    assert_refused(resp)


# --------------------------------------------------------------------------
# policy: algorithms, leeway, issuer and audience


def test_algorithms_narrowed(ngx, keys):
    ws1 = connect(ngx.port, "/narrow", make_token("RS256", keys.rsa, claims("n1")))
    ws2 = connect(ngx.port, "/narrow", make_token("ES256", keys.p256, claims("n2")))
    for alg in ("RS384", "RS512", "PS256", "PS512"):
        refused(ngx.port, "/narrow", make_token(alg, keys.rsa, claims("x")), "algorithm not allowed")
    # the HMAC secret is configured there, but HS256 is not in the list
    refused(ngx.port, "/narrow", make_token("HS256", keys.secret, claims("x")), "algorithm not allowed")
    refused(ngx.port, "/narrow", unsigned_token(claims("x")), "unsigned token (alg none)")
    # the same keys without the list accept the others
    close_ws(connect(ngx.port, "/mixed", make_token("PS256", keys.rsa, claims("n3"))))
    close_ws(connect(ngx.port, "/mixed", make_token("HS256", keys.secret, claims("n4"))))
    close_ws(ws1)
    close_ws(ws2)


def test_leeway(ngx, keys):
    t = now()
    opened = [
        connect(ngx.port, "/leeway", make_token("HS256", keys.secret, {"sub": "l1", "exp": t - 10})),
        connect(ngx.port, "/leeway", make_token("HS256", keys.secret, {"sub": "l2", "nbf": t + 10})),
    ]
    refused(ngx.port, "/leeway", make_token("HS256", keys.secret, {"sub": "x", "exp": t - 40}), "token expired")
    refused(ngx.port, "/leeway", make_token("HS256", keys.secret, {"sub": "x", "nbf": t + 60}),
            "token not valid yet (nbf)")
    # without leeway the first two are refused
    refused(ngx.port, "/k/hs-secret", make_token("HS256", keys.secret, {"sub": "x", "exp": t - 10}),
            "token expired")
    refused(ngx.port, "/k/hs-secret", make_token("HS256", keys.secret, {"sub": "x", "nbf": t + 10}),
            "token not valid yet (nbf)")
    for ws in opened:
        close_ws(ws)


def test_issuer_and_audience(ngx, keys):
    good = [
        claims("a1", iss="https://issuer.test", aud="rt-api"),
        claims("a2", iss="https://issuer.test", aud=["other", "rt-api"]),
    ]
    opened = [connect(ngx.port, "/strict", make_token("HS256", keys.secret, c)) for c in good]
    refused(ngx.port, "/strict", make_token("HS256", keys.secret, claims("x", iss="https://issuer.test")),
            "wrong audience")
    refused(ngx.port, "/strict", make_token("HS256", keys.secret,
                                            claims("x", iss="https://issuer.test", aud="RT-API")),
            "wrong audience")
    for ws in opened:
        close_ws(ws)


# --------------------------------------------------------------------------
# claims as variables and groups


def _spread(ngx, path, token):
    """Connections with token until every worker holds at least one."""
    return [ws for ws, _ in spread_subscribers(ngx, f"{path}?token={token}", 1, extra_tries=60)]


def test_claim_groups_isolate_users(ngx, keys):
    # both users on both workers: isolation must hold across workers too
    alice = _spread(ngx, "/claims", make_token("HS256", keys.secret, claims("alice")))
    bob = _spread(ngx, "/claims", make_token("HS384", keys.secret, claims("bob")))
    wait_count(ngx.port, "user_alice_notifications", len(alice))
    wait_count(ngx.port, "user_bob_notifications", len(bob))

    resp = publish(ngx.port, {"group": "user_alice_notifications", "data": {"for": "alice", "n": 1}})
    assert resp.json()["subscribers"] == len(alice)
    for ws in alice:
        assert json.loads(next_text(ws)) == {"for": "alice", "n": 1}
    # bob's connections have nothing before a marker published to bob's group
    expect_nothing_more(ngx.port, bob, "user_bob_notifications")
    publish(ngx.port, {"group": "user_bob_notifications", "data": "for bob"})
    for ws in bob:
        assert next_text(ws) == "for bob"
    expect_nothing_more(ngx.port, alice, "user_alice_notifications")

    # a subject that is not a valid group name part is refused, not mangled
    for sub in ("bob notifications", "a/b", "x" * 120, "bob_notifications user_alice"):
        resp, _ = handshake(ngx.port, "/claims?token=" + make_token("HS256", keys.secret, claims(sub)))
        assert_refused(resp, status=400)
    for ws in alice + bob:
        close_ws(ws)


def test_token_without_subject_is_refused_with_403(ngx, keys):
    """A valid token that names no user would put every such client in
    the same "user__notifications" group: it is refused instead."""
    no_sub = {k: v for k, v in claims("x").items() if k != "sub"}
    resp, ws = handshake(ngx.port, "/claims?token=" + make_token("HS256", keys.secret, no_sub))
    assert ws is None
    assert_refused(resp, "the token names no user", status=403)
    empty = claims("")
    resp, ws = handshake(ngx.port, "/claims?token=" + make_token("HS256", keys.secret, empty))
    assert ws is None
    assert_refused(resp, status=403)
    assert count(ngx.port, "user__notifications") == 0


def test_array_claim_groups(ngx, keys):
    def tok(**c):
        return make_token("HS256", keys.secret, claims("arr", ttl=3600, **c))

    ws = connect(ngx.port, "/arrays", tok(groups=["news", "room.1", 42, "news"], rooms="lobby", Team="red"))
    for g in ("news", "room.1", "42", "lobby", "team_red"):
        assert count(ngx.port, g) == 1, g
    publish(ngx.port, {"group": "room.1", "data": "r1"})
    publish(ngx.port, {"group": "42", "data": "int"})
    assert [next_text(ws), next_text(ws)] == ["r1", "int"]

    # an array claim named with braces expands too; an empty array adds nothing
    ws2 = connect(ngx.port, "/arrays", tok(groups=[], rooms=["r-a", "r-b"], team="blue"))
    for g in ("r-a", "r-b", "team_blue"):
        assert count(ngx.port, g) == 1, g

    # an element that is not a valid group name: 400
    for bad in (["ok", {"x": 1}], ["bad name"], [True], [1.5], [["nested"]], [None], ["x" * 101], ["a/b"]):
        resp, _ = handshake(ngx.port, "/arrays?token=" + tok(groups=bad))
        assert assert_refused(resp, status=400).startswith("invalid group name"), resp.body
    # an empty string is skipped, as an argument that evaluates to "" is
    ws3 = connect(ngx.port, "/arrays", tok(groups=["", "solo"]))
    assert count(ngx.port, "solo") == 1
    close_ws(ws3)
    close_ws(ws)
    close_ws(ws2)


def test_array_claim_name_matches_case_insensitively(ngx, keys):
    """$jwt_claim_NAME matches claim names case-insensitively (nginx
    lowercases variable names); the array expansion of the same argument
    must find the same claim, not fall back to its JSON text."""
    token = make_token("HS256", keys.secret, claims("arrcase", Rooms=["r-x", "r-y"], Groups=["g-x"]))
    resp, ws = handshake(ngx.port, "/arrays?token=" + token)
    assert resp.status == 101, f"{resp.status_line} {resp.body!r}"
    for g in ("r-x", "r-y", "g-x"):
        assert count(ngx.port, g) == 1, g
    close_ws(ws)


def test_claim_and_header_variables(ngx, keys):
    token = make_token("HS256", keys.oct, claims("vars", Email="v@example.test", roles=["a", "b"]),
                       kid="hk")
    resp, ws = handshake(ngx.port, "/vars?token=" + token)
    assert resp.status == 101
    assert resp.header("X-Sub") == "vars"
    assert resp.header("X-Email") == "v@example.test"  # claim names match case-insensitively
    assert resp.header("X-Roles") == '["a","b"]'       # non-strings as compact JSON
    assert resp.header("X-Kid") == "hk"
    close_ws(ws)


def test_realtime_user_custom(ngx, keys):
    ws = connect(ngx.port, "/user", make_token("HS256", keys.secret, claims("alice", tenant="acme")))
    assert count(ngx.port, "u_acme.alice") == 1
    close_ws(ws)

    def logged():
        text = (ngx.prefix / "logs" / "rt.log").read_text()
        return '101 "acme.alice"' in text
    assert wait_for(logged, 5), (ngx.prefix / "logs" / "rt.log").read_text()


# --------------------------------------------------------------------------
# expiry of a live connection, and in-band refresh


def _recv_text_json(ws, timeout=5):
    f = ws.recv_data(timeout=timeout)
    assert f.opcode == OP_TEXT, f
    return json.loads(f.payload)


def _wait_close(ws, timeout):
    """The next frame must be a close; returns it and the wall-clock time it was read."""
    f = ws.recv_data(timeout=max(timeout, 0.1))
    assert f.opcode == OP_CLOSE, f
    return f, time.time()


# Expiry is checked with whole seconds (exp) against the server's clock: a
# close must never come before exp (a few ms of clock granularity aside);
# how late it may come is bounded only by generous timeouts, so a loaded
# machine does not fail the test.
EARLY = 0.05
LATE = 10


def test_expiry_closes_with_4003_and_refresh_extends(ngx, keys):
    t0 = now()
    exp0, exp1 = t0 + 3, t0 + 9
    a = connect(ngx.port, "/expiry", make_token("HS256", keys.secret, {"sub": "ann", "exp": exp0}))
    b = connect(ngx.port, "/expiry", make_token("HS256", keys.secret, {"sub": "ben", "exp": exp0}))
    c = connect(ngx.port, "/expiry", make_token("HS256", keys.secret, {"sub": "cy", "exp": exp0}))

    # a: a valid token for the same subject moves the deadline
    a.send_text(json.dumps({"type": "refresh", "token": make_token("HS256", keys.secret,
                                                                   {"sub": "ann", "exp": exp1})}))
    assert _recv_text_json(a) == {"type": "refresh", "ok": True, "exp": exp1}

    # b: refused refreshes leave the old deadline
    bad = [
        (make_token("HS256", keys.secret, {"sub": "mallory", "exp": exp1}), "the new token is for another subject"),
        (make_token("HS256", keys.secret2, {"sub": "ben", "exp": exp1}), "bad signature"),
        (make_token("HS256", keys.secret, {"sub": "ben", "exp": t0 - 5}), "token expired"),
        (unsigned_token({"sub": "ben", "exp": exp1}), "unsigned token (alg none)"),
        (42, "no token"),
    ]
    for token, reason in bad:
        b.send_text(json.dumps({"type": "refresh", "token": token}))
        reply = _recv_text_json(b)
        assert reply == {"type": "refresh", "ok": False, "error": reason}, reply

    # c: a token without exp does not lift the connection's expiry
    c.send_text(json.dumps({"type": "refresh", "token": make_token("HS256", keys.secret, {"sub": "cy"})}))
    assert _recv_text_json(c) == {"type": "refresh", "ok": False,
                                  "error": "the new token does not expire"}

    # other text is still echoed (the refresh message is not)
    b.echo('{"type":"chat","text":"hi"}')

    # b and c keep the old deadline (the refused refreshes changed nothing)
    for ws in (b, c):
        f, when = _wait_close(ws, timeout=exp0 + LATE - time.time())
        assert f.close_code == 4003 and f.close_reason == b"token expired", f
        assert when >= exp0 - EARLY, f"closed {exp0 - when:.2f}s before exp"
        ws.send_close(4003)
        assert ws.wait_eof(5)

    # their deadline has passed (their close proves the server's clock did
    # too): a (refreshed) is open and nothing closed it
    assert time.time() < exp1 - 1, "the first close came too late to test the refreshed deadline"
    assert a.is_open()
    a.echo("still here")

    f, when = _wait_close(a, timeout=exp1 + LATE - time.time())
    assert f.close_code == 4003 and f.close_reason == b"token expired", f
    assert when >= exp1 - EARLY, f"closed {exp1 - when:.2f}s before the refreshed exp"
    a.send_close(4003)
    assert a.wait_eof(5)


def _voluntary_switches(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    return 0


def test_far_future_exp_does_not_spin_the_worker(ngx, keys):
    """A token whose exp is far away (here 9.3e15, so exp - now in ms does
    not fit a signed 64-bit ngx_msec_int_t) must not arm a timer that fires
    every millisecond: an idle connection keeps its worker asleep."""
    ws = connect(ngx.port, "/expiry", make_token("HS256", keys.secret, {"sub": "far", "exp": 9300000000000000}))
    pid = ngx.worker_of(ws.sock)
    ws.echo("settle")
    before = _voluntary_switches(pid)
    time.sleep(1.0)
    woke = _voluntary_switches(pid) - before
    assert ws.is_open()
    close_ws(ws)
    assert woke < 50, f"the worker woke up {woke} times in 1 s for one idle connection"


# --------------------------------------------------------------------------
# per-user connection limit, across workers


def _rt_log(ngx):
    """[(pid, status, user)] from the locations' access log."""
    try:
        text = (ngx.prefix / "logs" / "rt.log").read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        m = re.match(r'(\d+) (\d+) "(.*)"$', line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def test_per_user_limit_across_workers(ngx, keys):
    def token(sub):
        return make_token("HS256", keys.secret, claims(sub))

    workers = set(ngx.worker_pids(shutting_down=False))
    assert len(workers) == 2

    # two connections of alice, held by different workers
    first = connect(ngx.port, "/limit", token("alice"))
    w1 = ngx.worker_of(first.sock)
    second = None
    for _ in range(60):
        resp, ws = handshake(ngx.port, "/limit?token=" + token("alice"))
        if ws is None:
            assert_refused(resp, "too many connections for this user", status=429)
            time.sleep(0.05)
            continue
        if ngx.worker_of(ws.sock) != w1:
            second = ws
            break
        close_ws(ws)
        wait_count(ngx.port, "u_alice", 1)
    assert second is not None, "no second connection on the other worker"
    assert count(ngx.port, "u_alice") == 2

    # a third one is refused by either worker
    refused_by = set()
    for _ in range(60):
        resp, ws = handshake(ngx.port, "/limit?token=" + token("alice"))
        assert ws is None, "a third connection of alice was accepted"
        assert_refused(resp, "too many connections for this user", status=429)
        assert resp.header("WWW-Authenticate") is None
        refused_by = {pid for pid, status, user in _rt_log(ngx) if status == 429 and user == "alice"}
        if refused_by >= workers:
            break
    wait_for(lambda: {p for p, s, u in _rt_log(ngx) if s == 429} >= workers, 3)
    refused_by = {pid for pid, status, user in _rt_log(ngx) if status == 429 and user == "alice"}
    assert refused_by == workers, f"429s came from {refused_by}, workers {workers}"

    # other users are not affected
    bob = connect(ngx.port, "/limit", token("bob"))

    # closing one frees a place
    close_ws(first)
    deadline = time.monotonic() + 5
    again = None
    while time.monotonic() < deadline:
        resp, ws = handshake(ngx.port, "/limit?token=" + token("alice"))
        if ws is not None:
            again = ws
            break
        assert_refused(resp, "too many connections for this user", status=429)
        time.sleep(0.05)
    assert again is not None, "the limit did not free a place after a close"
    assert count(ngx.port, "u_alice") == 2
    resp, ws = handshake(ngx.port, "/limit?token=" + token("alice"))
    assert ws is None
    assert_refused(resp, "too many connections for this user", status=429)
    for ws in (second, again, bob):
        close_ws(ws)
    wait_count(ngx.port, "u_alice", 0)
    wait_count(ngx.port, "u_bob", 0)

    # a burst of simultaneous handshakes of one user: exactly the limit gets in
    results = []
    lock = threading.Lock()

    def attempt():
        resp, ws = handshake(ngx.port, "/limit?token=" + token("dave"))
        with lock:
            results.append((resp.status, ws))

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    statuses = sorted(status for status, _ in results)
    assert statuses == [101] * 2 + [429] * 8, statuses
    assert count(ngx.port, "u_dave") == 2
    for _status, ws in results:
        if ws is not None:
            close_ws(ws)


# --------------------------------------------------------------------------
# where the token comes from


def test_token_sources(ngx, keys):
    good = make_token("HS256", keys.secret, claims("src"))
    bad = make_token("HS256", keys.secret2, claims("src"))
    opened = []
    for headers, path in [
        ([("Authorization", "Bearer " + good)], "/sources"),
        ([("Authorization", "bearer " + good)], "/sources"),
        ([("Authorization", good)], "/sources"),
        ([("Cookie", "sessionid=zzz; access_token=" + good + "; theme=dark")], "/sources"),
        ([], "/sources?token=" + good),
        # the first non-empty source wins: an empty ?token= falls through
        ([("Cookie", "access_token=" + good)], "/sources?token="),
    ]:
        resp, ws = handshake(ngx.port, path, headers=headers)
        assert resp.status == 101, (headers, path, resp)
        opened.append(ws)
    assert count(ngx.port, "u_src") == len(opened)

    # ... and a bad first source is not rescued by a good later one
    resp, _ = handshake(ngx.port, "/sources?token=" + bad, headers=[("Authorization", "Bearer " + good)])
    assert_refused(resp, "bad signature")
    resp, _ = handshake(ngx.port, "/sources", headers=[("Cookie", "access_token=" + bad),
                                                       ("Authorization", "Bearer " + good)])
    assert_refused(resp, "bad signature")
    for ws in opened:
        close_ws(ws)


def test_token_as_subprotocol(ngx, keys):
    good = make_token("HS256", keys.secret, claims("proto"))
    # one header, two values; and the same as two header lines
    for protocols in (["chat.v1, bearer." + good], ["bearer." + good, "chat.v2"]):
        resp, ws = handshake(ngx.port, "/proto", protocols=protocols)
        assert resp.status == 101, (protocols, resp)
        selected = resp.header("Sec-WebSocket-Protocol")
        assert selected in ("chat.v1", "chat.v2"), resp.headers
        assert "bearer" not in json.dumps(resp.headers).lower()
        assert count(ngx.port, "u_proto") == 1
        close_ws(ws)
        wait_count(ngx.port, "u_proto", 0)
    # the token offered alone: authenticated, but bearer.* is never echoed
    resp, ws = handshake(ngx.port, "/proto", protocols=["bearer." + good])
    assert resp.status == 101
    assert resp.header("Sec-WebSocket-Protocol") in (None,)
    close_ws(ws)

    bad = make_token("HS256", keys.secret2, claims("proto"))
    resp, _ = handshake(ngx.port, "/proto", protocols=["chat.v1, bearer." + bad])
    assert_refused(resp, "bad signature")
    resp, _ = handshake(ngx.port, "/proto", protocols=["chat.v1"])
    assert_refused(resp, "no token")
    # the query string is not a source there
    resp, _ = handshake(ngx.port, "/proto?token=" + good, protocols=["chat.v1"])
    assert_refused(resp, "no token")


def test_token_never_logged(ngx, keys):
    tokens = {
        "valid": make_token("HS256", keys.secret, claims("logged")),
        "bad-sig": make_token("HS256", keys.secret2, claims("logged")),
        "expired": make_token("HS256", keys.secret, claims("logged", ttl=-100)),
        "alg-none": unsigned_token(claims("logged")) + "c2lnbmF0dXJlLXBhcnQtb2YtdGhlLW5vbmUtdG9rZW4",
        "refresh": make_token("HS256", keys.secret2, claims("logged", ttl=7200)),
    }
    ngx.mark_log()
    resp, ws = handshake(ngx.port, "/sources", headers=[("Authorization", "Bearer " + tokens["valid"])])
    assert resp.status == 101
    for name in ("bad-sig", "expired", "alg-none"):
        resp, _ = handshake(ngx.port, "/sources", headers=[("Authorization", "Bearer " + tokens[name])])
        assert_refused(resp)
        resp, _ = handshake(ngx.port, "/sources", headers=[("Cookie", "access_token=" + tokens[name])])
        assert_refused(resp)
    # a refused refresh is logged too, without the token
    ws.send_text(json.dumps({"type": "refresh", "token": tokens["refresh"]}))
    assert _recv_text_json(ws)["ok"] is False
    close_ws(ws)
    assert ngx.wait_log(lambda line: "token refresh refused: bad signature" in line)
    assert ngx.wait_log(lambda line: "handshake refused with 401: token expired" in line)
    assert ngx.wait_log(lambda line: "handshake refused with 401: unsigned token (alg none)" in line)

    logs = ngx.error_log() + ngx.stderr_text()
    for name in ("access.log", "rt.log"):
        p = ngx.prefix / "logs" / name
        if p.exists():
            logs += p.read_text()
    for name, token in tokens.items():
        sig = signature_of(token)
        payload = token.split(".")[1]
        assert sig not in logs, f"the signature of the {name} token is in a log"
        assert payload not in logs, f"the payload of the {name} token is in a log"


# --------------------------------------------------------------------------
# configuration checks (nginx -t)


def _t(keys, location_body, extra_http=""):
    return nginx_test_config(f"""
    realtime_zone rt 4m;
    {extra_http}
    server {{
        listen {{port}};
        location = /ws {{
            realtime_websocket;
            {location_body}
        }}
    }}
""")


def test_config_errors(keys, tmp_path):
    tmp_path.chmod(0o755)
    d = keys.dir
    short = write_file(tmp_path / "short.secret", "x" * 31 + "\n")
    ok32 = write_file(tmp_path / "ok.secret", "x" * 32 + "\n")
    bad_json = write_file(tmp_path / "bad.jwks", '{"keys": [ {"kty": "RSA", "n": "AQAB"} ]}')
    bad_pem = write_file(tmp_path / "bad.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    priv = keys.rsa.priv_path
    enc_only = write_jwks(tmp_path / "enc.jwks", keys.rsa.jwk(use="enc"))

    rc, out = _t(keys, f"realtime_auth_jwt $arg_token; realtime_auth_jwt_key_file {ok32};")
    assert rc == 0, out
    rc, out = _t(keys, f"realtime_auth_jwt $arg_token; realtime_auth_jwt_key_file {d}/rsa.jwks; "
                       f"realtime_auth_jwt_key_file {d}/ed.pub.pem; realtime_auth_jwt_algorithms RS256 EdDSA;")
    assert rc == 0, out

    for f, what in [(short, "shorter than 32 bytes"), (bad_json, "RSA"), (bad_pem, "PUBLIC KEY"),
                    (priv, "PUBLIC KEY"), (tmp_path / "missing.pem", "cannot open")]:
        rc, out = _t(keys, f"realtime_auth_jwt $arg_token; realtime_auth_jwt_key_file {f};")
        assert rc != 0, (f, out)
        assert "invalid JWT key file" in out and what in out, (f, out)

    rc, out = _t(keys, "realtime_auth_jwt $arg_token;")
    assert rc != 0 and "needs at least one" in out, out
    rc, out = _t(keys, f"realtime_auth_jwt $arg_token; realtime_auth_jwt_key_file {enc_only};")
    assert rc != 0 and "needs at least one" in out, out
    rc, out = _t(keys, f"realtime_auth_jwt $arg_token; realtime_auth_jwt_key_file {ok32}; "
                       "realtime_auth_jwt_algorithms HS256 none;")
    assert rc != 0 and 'unknown JWT algorithm "none"' in out, out
    rc, out = nginx_test_config(f"""
    server {{
        listen {{port}};
        location = /ws {{
            realtime_websocket;
            realtime_auth_jwt $arg_token;
            realtime_auth_jwt_key_file {ok32};
            realtime_max_connections_per_user 2;
        }}
    }}
""")
    assert rc != 0 and "needs a \"realtime_zone\"" in out, out
