"""A Django project that publishes the way the seed apps do: through its
channel layer, with async_to_sync(get_channel_layer().group_send)(...),
unchanged. No database, no Daphne: nginx takes the messages from Redis.

Environment:
  CH_REDIS    the Redis URL of the layer (redis://127.0.0.1:PORT)
  CH_LAYER    core (channels_redis.core.RedisChannelLayer, the default) or
              pubsub (channels_redis.pubsub.RedisPubSubChannelLayer)
  CH_PREFIX   the layer's prefix (default asgi)
  CH_CAPACITY the core layer's capacity (default 100)
"""
import os

SECRET_KEY = "channels-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["chsite"]
MIDDLEWARE = []
ROOT_URLCONF = "chsite.urls"
DATABASES = {}
USE_TZ = True

_layer = os.environ.get("CH_LAYER", "core")
_config = {"hosts": [os.environ.get("CH_REDIS", "redis://127.0.0.1:6379")],
           "prefix": os.environ.get("CH_PREFIX", "asgi")}
if _layer == "core":
    _config["capacity"] = int(os.environ.get("CH_CAPACITY", "100"))

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": ("channels_redis.core.RedisChannelLayer" if _layer == "core"
                    else "channels_redis.pubsub.RedisPubSubChannelLayer"),
        "CONFIG": _config,
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
