from django.urls import path

from inbox import inspect, views

urlpatterns = [
    path("realtime/relay", views.relay),
    # for the tests only
    path("realtime/state", inspect.state),
    path("realtime/seed", inspect.seed),
]
