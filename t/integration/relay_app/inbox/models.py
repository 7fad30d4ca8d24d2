from django.conf import settings
from django.db import models


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    title = models.CharField(max_length=200)
    read = models.BooleanField(default=False)


class ChatMessage(models.Model):
    room = models.CharField(max_length=100)
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)


class Event(models.Model):
    """A connection opened or closed (realtime_relay_events)."""
    kind = models.CharField(max_length=20)  # "connect" or "disconnect"
    user = models.CharField(max_length=200, blank=True)  # X-Realtime-User
    connection = models.CharField(max_length=100)  # X-Realtime-Connection
    code = models.IntegerField(null=True)  # the close code of a disconnect
    created = models.DateTimeField(auto_now_add=True)
