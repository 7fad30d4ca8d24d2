"""The consumer's logic as ordinary Django views.

nginx (realtime_relay) POSTs every client message it does not handle itself
to /realtime/relay, one at a time per connection, with the sender in
X-Realtime-User. A handler returns what should happen next: a "reply" for
that connection and/or messages to "publish" to groups, in one answer.
"""
import hmac
import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import ChatMessage, Event, Notification

HANDLERS = {}


def handles(message_type):
    """Registers a handler for client messages of that "type"."""
    def register(handler):
        HANDLERS[message_type] = handler
        return handler
    return register


@handles("mark_read")
def mark_read(request, message):
    user = request.realtime_user
    Notification.objects.filter(pk=message["id"], user=user).update(read=True)
    unread = Notification.objects.filter(user=user, read=False).count()
    return {
        "reply": {"type": "unread", "count": unread},
        "publish": [{"group": f"user_{user.pk}_notifications",
                     "data": {"type": "badge", "unread": unread}}],
    }


@handles("chat")
def chat(request, message):
    room = message["room"]
    if f"chat_{room}" not in request.realtime_groups:
        return {"reply": {"type": "error", "error": "not_in_room"}}
    saved = ChatMessage.objects.create(room=room, sender=request.realtime_user,
                                       text=message["message"])
    return {
        "publish": [{"group": f"chat_{room}",
                     "data": {"type": "chat_message", "id": saved.pk,
                              "message": saved.text, "sender": saved.sender_id}}],
    }


@handles("connect")
def connect(request, message):
    Event.objects.create(kind="connect", user=request.realtime_user.pk,
                         connection=request.headers["X-Realtime-Connection"])
    unread = Notification.objects.filter(user=request.realtime_user, read=False).count()
    return {"reply": {"type": "hello", "unread": unread}}


@handles("disconnect")
def disconnect(request, message):
    Event.objects.create(kind="disconnect", user=request.realtime_user.pk,
                         connection=request.headers["X-Realtime-Connection"],
                         code=message.get("code"))


def from_nginx(request):
    """True if the request carries the secret nginx is configured to send."""
    secret = settings.REALTIME_RELAY_SECRET.encode()
    sent = request.headers.get("X-Relay-Secret", "").encode()
    return bool(secret) and hmac.compare_digest(sent, secret)


@csrf_exempt
@require_POST
def relay(request):
    if not from_nginx(request):
        return HttpResponseForbidden()
    try:
        message = json.loads(request.body)
        handler = HANDLERS[message["type"]]
    except (ValueError, TypeError, KeyError):
        return HttpResponseBadRequest()
    request.realtime_user = get_object_or_404(get_user_model(),
                                              pk=request.headers.get("X-Realtime-User"))
    request.realtime_groups = set(request.headers.get("X-Realtime-Groups", "").split(","))
    answer = handler(request, message)
    if isinstance(answer, HttpResponse):
        return answer
    return JsonResponse(answer) if answer else HttpResponse()
