"""Settings of the Django Channels reference for bench/run's room and relay scenarios:
the stack our users migrate from (Daphne, Channels, channels_redis), as small
as it goes. bench/run sets RTBENCH_REDIS_URL (a redis-server of its own)."""

import os

SECRET_KEY = "rtbench-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
ROOT_URLCONF = "django_room.urls"
ASGI_APPLICATION = "django_room.asgi.application"
USE_TZ = True
DATABASES = {}
CHANNEL_LAYERS = {
    "default": {
        # the layer of the seeds' deployments, with its defaults (capacity 100, expiry 60 s)
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("RTBENCH_REDIS_URL", "redis://127.0.0.1:6379/0")]},
    },
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
