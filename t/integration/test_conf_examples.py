"""Every file in conf-examples/ passes `nginx -t` with the built module."""

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from nginx_harness import MODULE, REPO

EXAMPLES = sorted((REPO / "conf-examples").glob("*.conf"))


def nginx_t(conf_text, prefix):
    (prefix / "conf").mkdir(exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    path = prefix / "conf" / "nginx.conf"
    path.write_text(conf_text)
    return subprocess.run(["/usr/sbin/nginx", "-t", "-p", str(prefix), "-c", str(path)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def jwt_public_key(tmp_path_factory):
    d = tmp_path_factory.mktemp("jwtkey")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(d / "key.pem")], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(d / "key.pem"), "-pubout", "-out", str(d / "pub.pem")],
                   check=True, capture_output=True)
    return d / "pub.pem"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_passes_nginx_t(example, jwt_public_key, tls_cert):
    prefix = Path(tempfile.mkdtemp(prefix="rt-example-"))
    # machine-specific files the examples name: stand-ins made for the test
    text = (example.read_text()
            .replace("/etc/nginx/realtime/jwt-public.pem", str(jwt_public_key))
            .replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", str(tls_cert[0]))
            .replace("/etc/ssl/private/ssl-cert-snakeoil.key", str(tls_cert[1])))
    if re.search(r"^load_module", text, re.M):
        # a whole nginx.conf (the demo): fill in the demo script's placeholders
        conf = (text.replace("@MODULE@", str(MODULE)).replace("@PREFIX@", str(prefix))
                .replace("@HTML@", str(REPO / "demo")))
    else:
        # an http{}-level snippet, as its header says: include it in a minimal main config
        conf = (f"load_module {MODULE};\nerror_log {prefix}/logs/error.log;\npid {prefix}/logs/nginx.pid;\n"
                f"events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {prefix}/tmp;\n"
                f"  proxy_temp_path {prefix}/tmp;\n{text}\n}}\n")
    r = nginx_t(conf, prefix)
    assert r.returncode == 0, r.stderr
    assert "syntax is ok" in r.stderr
