"""Settings of the test app: sqlite, no static files, no sessions.

Environment:
  RELAY_DB      the sqlite file (default: db.sqlite3 in the current directory)
  RELAY_SECRET  the value nginx sends in X-Relay-Secret (realtime_relay_header)
"""
import os

SECRET_KEY = "relay-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "inbox",
]

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",  # sets Content-Length: keepalive with nginx
    "inbox.inspect.RequestLogMiddleware",
]

ROOT_URLCONF = "relay_site.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("RELAY_DB", "db.sqlite3"),
        "OPTIONS": {"timeout": 20},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True

# The shared secret nginx adds to every relayed request.
REALTIME_RELAY_SECRET = os.environ.get("RELAY_SECRET", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
