"""The consumers of bench/run's Django Channels reference.

ChatConsumer (room_1k): the chat consumer as the Channels tutorial and the
seeds write it: join the room's group on connect, group_send what a member
sends, and send every group message to the member's socket. Anonymous members:
"sender" is null, as the module stamps it for a connection without a user.

RelayConsumer (relay_rtt): the request/answer that realtime_relay does with an
HTTP app, done by the consumer itself: each message is answered on the same
socket with {"reply": <the message>}, what bench/echo_app answers the module."""

import json

from channels.generic.websocket import AsyncWebsocketConsumer


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.group = "room_" + self.scope["url_route"]["kwargs"]["room"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        data = json.loads(text_data)
        await self.channel_layer.group_send(
            self.group, {"type": "chat.message", "message": data["message"], "sender": None})

    async def chat_message(self, event):
        await self.send(text_data=json.dumps(
            {"message": event["message"], "sender": event["sender"]}, separators=(",", ":")))


class RelayConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=json.dumps({"reply": json.loads(text_data)}))
