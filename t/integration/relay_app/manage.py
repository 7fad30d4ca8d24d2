#!/usr/bin/env python3
"""The Django app the relay tests talk to (see relay_site/settings.py)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relay_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
