"""JWT helpers for the authentication tests: keys made with the openssl CLI
in a temporary directory, their JWK forms, and tokens signed for every JWS
algorithm (HS* with Python's hmac, the others with `openssl`).

Nothing here is checked in: every key is generated when a test module asks
for one."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

# --------------------------------------------------------------------------
# base64url


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")))


def b64u_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------
# a minimal DER reader (SubjectPublicKeyInfo, ECDSA signatures)


def _der(data, pos=0):
    """(tag, content, next position) of the DER element at pos."""
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[pos:pos + k], "big")
        pos += k
    return tag, data[pos:pos + n], pos + n


def _der_children(content):
    pos, out = 0, []
    while pos < len(content):
        tag, value, pos = _der(content, pos)
        out.append((tag, value))
    return out


def _uint_bytes(value):
    """An INTEGER's content as unsigned big-endian bytes (no sign byte)."""
    return value.lstrip(b"\0") or b"\0"


def ecdsa_der_to_raw(der, size):
    """OpenSSL's DER ECDSA-Sig-Value -> JWS r || s (each `size` bytes)."""
    tag, content, _ = _der(der)
    assert tag == 0x30, der.hex()
    (t1, r), (t2, s) = _der_children(content)
    assert t1 == t2 == 0x02
    return _uint_bytes(r).rjust(size, b"\0") + _uint_bytes(s).rjust(size, b"\0")


# --------------------------------------------------------------------------
# keys


def openssl(*args, data=None):
    res = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {res.stderr.decode(errors='replace')}")
    return res.stdout


_DIGEST = {"256": "-sha256", "384": "-sha384", "512": "-sha512"}

HMAC_ALGS = ("HS256", "HS384", "HS512")
RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
ALL_ALGS = HMAC_ALGS + RSA_ALGS + ("ES256", "ES384", "EdDSA")


class KeyPair:
    """A private key file and its public half (PEM file and JWK)."""

    GENPKEY = {
        "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "ed25519": ["-algorithm", "ED25519"],
    }

    def __init__(self, directory, kind, name):
        self.kind = kind
        self.priv_path = Path(directory) / f"{name}.key"
        self.pub_path = Path(directory) / f"{name}.pub.pem"
        openssl("genpkey", *self.GENPKEY[kind], "-out", str(self.priv_path))
        openssl("pkey", "-in", str(self.priv_path), "-pubout", "-out", str(self.pub_path))
        os.chmod(self.pub_path, 0o644)
        self.pub_pem = self.pub_path.read_bytes()
        self.spki = openssl("pkey", "-in", str(self.priv_path), "-pubout", "-outform", "DER")

    def jwk(self, **extra):
        """The public key as a JWK dict (extra members added, e.g. kid=...)."""
        _tag, spki, _ = _der(self.spki)
        (_t, _algo), (tbits, bits) = _der_children(spki)
        assert tbits == 0x03 and bits[0] == 0
        key = bits[1:]
        if self.kind == "rsa":
            _tag, seq, _ = _der(key)
            (_t1, n), (_t2, e) = _der_children(seq)
            jwk = {"kty": "RSA", "n": b64u(_uint_bytes(n)), "e": b64u(_uint_bytes(e))}
        elif self.kind in ("p256", "p384"):
            size = 32 if self.kind == "p256" else 48
            assert key[0] == 4 and len(key) == 1 + 2 * size
            jwk = {"kty": "EC", "crv": "P-256" if size == 32 else "P-384",
                   "x": b64u(key[1:1 + size]), "y": b64u(key[1 + size:])}
        else:
            assert len(key) == 32
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(key)}
        jwk.update(extra)
        return jwk

    def sign(self, alg, data):
        """The JWS signature of data under alg with this private key."""
        key = str(self.priv_path)
        if alg == "EdDSA":
            assert self.kind == "ed25519"
            # Ed25519 signs the message itself in one shot: pkeyutl wants a file
            with tempfile.NamedTemporaryFile(dir=self.priv_path.parent) as f:
                f.write(data)
                f.flush()
                return openssl("pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", f.name)
        digest = _DIGEST[alg[2:]]
        if alg.startswith("RS"):
            return openssl("dgst", digest, "-sign", key, data=data)
        if alg.startswith("PS"):
            return openssl("dgst", digest, "-sign", key, "-sigopt", "rsa_padding_mode:pss",
                           "-sigopt", "rsa_pss_saltlen:digest", data=data)
        if alg.startswith("ES"):
            der = openssl("dgst", digest, "-sign", key, data=data)
            return ecdsa_der_to_raw(der, 32 if alg == "ES256" else 48)
        raise ValueError(alg)


def write_file(path, text, mode=0o644):
    path = Path(path)
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    os.chmod(path, mode)
    return path


def write_jwks(path, *jwks):
    return write_file(path, json.dumps({"keys": list(jwks)}))


def new_secret(n=48):
    """A random HMAC secret of printable text (as a secret file holds)."""
    return b64u(os.urandom(n))[:n]


def new_secret_file(directory, name="hs.secret"):
    """A new HMAC secret written to directory/name for
    realtime_auth_jwt_key_file (the directory made readable by the workers).
    Returns (secret, path)."""
    directory = Path(directory)
    directory.chmod(0o755)
    secret = new_secret()
    return secret, write_file(directory / name, secret)


# --------------------------------------------------------------------------
# tokens


def sign(alg, key, data):
    """key: a KeyPair, or a secret (str/bytes) for the HS algorithms."""
    if alg in HMAC_ALGS:
        if isinstance(key, str):
            key = key.encode()
        return hmac.new(key, data, getattr(hashlib, "sha" + alg[2:])).digest()
    return key.sign(alg, data)


def claims(sub="alice", ttl=3600, **extra):
    """Claims for sub expiring in ttl seconds (None: no exp)."""
    c = {"sub": sub, "iat": int(time.time())}
    if ttl is not None:
        c["exp"] = int(time.time()) + ttl
    c.update(extra)
    return c


def make_token(alg, key, claims_obj=None, kid=None, header=None, raw_header=None,
               raw_payload=None):
    """A compact JWS. header: extra header members; raw_header/raw_payload:
    exact JSON texts (or any bytes) instead of the serialized objects."""
    h = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        h["kid"] = kid
    h.update(header or {})
    h64 = b64u(raw_header) if raw_header is not None else b64u_json(h)
    if raw_payload is not None:
        p64 = b64u(raw_payload)
    else:
        p64 = b64u_json(claims() if claims_obj is None else claims_obj)
    signing_input = f"{h64}.{p64}"
    return signing_input + "." + b64u(sign(alg, key, signing_input.encode()))


def unsigned_token(claims_obj, alg="none"):
    return b64u_json({"alg": alg, "typ": "JWT"}) + "." + b64u_json(claims_obj) + "."


def signature_of(token):
    return token.rsplit(".", 1)[1]
