"""Configuration rules that keep promises: a publish body limit that is a
size, a send buffer that holds the largest message, and reasons in the log
for every refused configuration."""

from groups_util import nginx_test_config, publish, subscribe
from wsclient import OP_TEXT, assert_json_error


def test_publish_needs_a_body_limit():
    """client_max_body_size 0 ("no limit") cannot reach a publish location,
    set there or inherited: nginx -t names the location."""
    for snippet in ("""
realtime_zone rt 1m;
server {
    listen {port};
    location = /publish {
        client_max_body_size 0;
        realtime_publish;
    }
}""", """
realtime_zone rt 1m;
client_max_body_size 0;
server {
    listen {port};
    location = /pub {
        realtime_publish;
    }
}"""):
        rc, out = nginx_test_config(snippet)
        assert rc != 0, out
        assert "needs a body limit" in out and "client_max_body_size 0" in out, out
        assert '"/pub' in out, out


BODY = """
realtime_zone rt 1m;
client_max_body_size 0;
server {
    listen {port};
    location = /publish {
        client_max_body_size 2k;
        realtime_publish;
    }
}
"""


def test_publish_body_limit_is_the_locations_size(nginx_factory):
    ngx = nginx_factory(BODY)
    ok = publish(ngx.port, {"group": "g", "data": "x" * 1500})
    assert ok.json() == {"messages": 1, "subscribers": 0}
    big = publish(ngx.port, {"group": "g", "data": "x" * 2100}, expect=None)
    assert_json_error(big, 413)


def test_send_buffer_must_hold_the_largest_message():
    rc, out = nginx_test_config("""
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_echo on;
        realtime_max_message_size 64k;
        realtime_send_buffer_size 64k;
    }
}""")
    assert rc != 0, out
    assert "cannot hold an echo" in out, out


ECHO = """
server {
    listen {port};
    location = /ws {
        realtime_websocket;
        realtime_echo on;
        realtime_max_message_size 1000;
        realtime_send_buffer_size 1010;
    }
}
"""


def test_a_message_at_the_limit_is_echoed(nginx_factory):
    """The smallest send buffer nginx -t accepts still echoes the largest
    message a client may send."""
    ngx = nginx_factory(ECHO)
    ws = subscribe(ngx.port, "/ws")
    text = "z" * 1000
    ws.send_text(text)
    f = ws.recv_data()
    assert f.opcode == OP_TEXT and f.payload.decode() == text, f
    assert ws.is_open()
