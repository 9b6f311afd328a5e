"""``cxloop dispatcher``: the embedded setup's delivery worker (``make run`` starts it).

Without a Celery broker nothing else would send due invitations: this loop runs the same
heartbeat as the Celery beat task, every ``DISPATCH_INTERVAL`` seconds, and sends in-process.
With a broker, run ``make worker`` and ``make beat`` instead.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from cxloop.analytics.rollups import tick as analytics_tick
from cxloop.cases.services import tick as cases_tick
from cxloop.core import clock
from cxloop.delighted.tasks import heartbeat as delighted_heartbeat
from cxloop.surveys import dispatch
from cxloop.text.services import tick as text_tick
from cxloop.webhooks.delivery import deliver_due as deliver_webhooks

log = logging.getLogger("cxloop.surveys.dispatcher")
# Comments coded per heartbeat at most, so that sending is never held up for long.
TEXT_BUDGET = 2000


def send_now(ids: list[int], reminder: bool) -> None:
    dispatch.send(ids, reminder=reminder)


class Command(BaseCommand):
    help = "Send due survey invitations in-process (the embedded setup's worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one heartbeat and exit.")
        parser.add_argument(
            "--interval", type=float, default=None, help="Seconds between heartbeats."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options["interval"] or settings.DISPATCH_INTERVAL
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        last_flag = 0.0
        while not stop.is_set():
            began = time.monotonic()
            try:
                now = clock.now()
                stats = dispatch.tick(send_now, interval=interval, now=now)
                # Delighted compatibility: Autopilot members due, outgoing webhooks due.
                stats.update(delighted_heartbeat(now))
                # The closed loop: missed cases opened, reminders, escalations, e-mails.
                stats.update(cases_tick(now))
                stats.update(analytics_tick(now))  # NPS rollups of changed days
                # Comments: collect imported ones and call-back notes, code what is waiting.
                stats.update(text_tick(now, budget=TEXT_BUDGET))
                # cxloop's own webhooks due, the events just recorded included ("hooks_": the
                # Delighted ones count as "webhooks_").
                stats.update({f"hooks_{k}": v for k, v in deliver_webhooks(now).items()})
                if began - last_flag > 3600:
                    from cxloop.accounts.models import Workspace
                    from cxloop.surveys.funnel import flag_silent_accounts

                    for workspace in Workspace.objects.all():
                        flag_silent_accounts(workspace)
                    # The weekly digests, where it is Monday 07:00 or later locally (as
                    # Celery beat's hourly entry); once a week per reader, however often.
                    from cxloop.analytics.digest import send_all

                    send_all(now, scheduled=True)
                    if now.hour == 3:
                        # The night's retraining of text models with enough new labels.
                        from cxloop.text.services import retrain_due

                        retrain_due(now)
                    last_flag = began
            except Exception:
                if options["once"]:
                    raise
                log.exception("dispatcher heartbeat failed; trying again")
                stats = {}
            busy = {k: v for k, v in stats.items() if v}
            if busy:
                log.info("dispatcher: %s", ", ".join(f"{k}={v}" for k, v in sorted(busy.items())))
            if options["once"]:
                return
            close_old_connections()  # a database restart costs one heartbeat, not the process
            stop.wait(max(0.0, interval - (time.monotonic() - began)))
