"""Sending events the way the seed apps do."""
import base64

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def decode(value):
    """JSON cannot carry bytes: {"__b64__": "..."} stands for them."""
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def send_all(sends):
    """sends: [[group, event], ...], each through group_send, in order (one
    call per event, as a signal handler or a task makes it)."""
    layer = get_channel_layer()
    for group, event in sends:
        async_to_sync(layer.group_send)(group, decode(event))
    return len(sends)
