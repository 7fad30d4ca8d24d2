"""manage.py send_events '[[group, event], ...]': group_send from a process
of its own (a Celery worker's or a cron job's topology)."""
import json

from django.core.management.base import BaseCommand

from chsite.events import send_all


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("sends")

    def handle(self, *args, **options):
        n = send_all(json.loads(options["sends"]))
        self.stdout.write(f"sent {n}")
