import json

from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from chsite.events import send_all


def ping(request):
    return HttpResponse("pong")


@csrf_exempt
def send(request):
    """POST {"sends": [[group, event], ...]}: group_send each, in order."""
    body = json.loads(request.body)
    return JsonResponse({"sent": send_all(body["sends"])})


urlpatterns = [path("ping", ping), path("send", send)]
