"""daphne django_room.asgi:application (run from bench/)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_room.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from .consumers import ChatConsumer, RelayConsumer  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": URLRouter([
        re_path(r"^room/(?P<room>\w+)$", ChatConsumer.as_asgi()),
        re_path(r"^relay$", RelayConsumer.as_asgi()),
    ]),
})
