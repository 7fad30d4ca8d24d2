"""`runserver` with TCP_NODELAY on the connections it accepts.

Django's development server writes a response in several small send()s; on
a keepalive connection (nginx keeps its connections to the app open) Nagle's
algorithm then holds the last of them until the peer's delayed ACK, about
40 ms per request. Production servers (gunicorn, uwsgi) set TCP_NODELAY.
"""
import socket

from django.core.management.commands.runserver import Command as RunserverCommand
from django.core.servers.basehttp import WSGIServer


class NoDelayWSGIServer(WSGIServer):
    def get_request(self):
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr


class Command(RunserverCommand):
    server_cls = NoDelayWSGIServer
