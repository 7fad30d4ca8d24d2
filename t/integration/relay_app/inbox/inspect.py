"""Test-only parts of the app: message types that exercise the relay
(ordering, a slow or failing app, answers of any shape), a log of the relay
requests as they arrived, and views to seed and inspect the state."""
import json
import threading
import time
from collections import defaultdict

from django.contrib.auth import get_user_model
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import ChatMessage, Event, Notification
from .views import handles

_lock = threading.Lock()
_requests = []  # one dict per relayed request, in arrival order
_in_flight = defaultdict(int)  # X-Realtime-Connection -> requests being answered
_overlaps = []  # a connection's request that arrived while another was in flight
_orders = defaultdict(list)  # X-Realtime-Connection -> the "n" of its echo_order messages


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path != "/realtime/relay":
            return self.get_response(request)
        conn = request.headers.get("X-Realtime-Connection", "")
        entry = {
            "arrived": time.time(),
            "method": request.method,
            "headers": {name: request.headers.get(name) for name in (
                "Host", "Content-Type", "Content-Length", "Connection", "X-Realtime-User",
                "X-Realtime-Connection", "X-Realtime-Groups", "X-Relay-Secret", "Cookie",
                "X-Extra")},
            "body": request.body.decode("utf-8", "replace"),
        }
        with _lock:
            _requests.append(entry)
            _in_flight[conn] += 1
            if _in_flight[conn] > 1:
                _overlaps.append(entry)
        try:
            response = self.get_response(request)
            entry["status"] = response.status_code
            return response
        finally:
            with _lock:
                _in_flight[conn] -= 1
            entry["answered"] = time.time()


@handles("echo_order")
def echo_order(request, message):
    with _lock:
        _orders[request.headers["X-Realtime-Connection"]].append(message["n"])


@handles("slow")
def slow(request, message):
    time.sleep(message.get("seconds", 2))
    return {"reply": {"type": "slow_done", "tag": message.get("tag")}}


@handles("fail")
def fail(request, message):
    return HttpResponse(status=message.get("status", 500))


@handles("answer")
def answer(request, message):
    """Answers message["body"] verbatim (a string) with message["status"]."""
    return HttpResponse(message["body"], status=message.get("status", 200),
                        content_type="application/json")


def state(request):
    with _lock:
        requests = list(_requests)
        overlaps = list(_overlaps)
        orders = {conn: list(ns) for conn, ns in _orders.items()}
    return JsonResponse({
        "notifications": list(Notification.objects.order_by("pk").values(
            "id", "user_id", "title", "read")),
        "chat": list(ChatMessage.objects.order_by("pk").values("id", "room", "sender_id", "text")),
        "events": list(Event.objects.order_by("pk").values("id", "kind", "user", "connection",
                                                          "code")),
        "orders": orders,
        "requests": requests,
        "overlaps": overlaps,
    })


@csrf_exempt
def seed(request):
    """POST {"user": id, "titles": [...]}: the user (created if missing) and
    one unread notification per title. Answers {"ids": [...]}."""
    body = json.loads(request.body)
    user, _ = get_user_model().objects.get_or_create(
        pk=body["user"], defaults={"username": f"user{body['user']}"})
    ids = [Notification.objects.create(user=user, title=title).pk
           for title in body.get("titles", [])]
    return JsonResponse({"ids": ids})
