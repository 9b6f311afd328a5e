"""End to end through real parts: an interaction becomes an e-mail on a real SMTP server,
sent by a real Celery worker (with its beat) through a real Redis broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from cxloop.testing import Mailbox, free_port

BIN = Path(sys.executable).parent
SETUP = """
from cxloop.accounts.services import create_workspace
from cxloop.customers.models import Customer
from cxloop.organisation.models import Journey, Region, Stage, Touchpoint
from cxloop.surveys.definition import default_definition
from cxloop.surveys.services import save_survey
ws = create_workspace("shop", "Shop", via="cli")
journey = Journey.objects.create(workspace=ws, code="J", name="J")
stage = Stage.objects.create(workspace=ws, code="S", name="S", journey=journey)
Touchpoint.objects.create(workspace=ws, code="store-visit", name="Store visit", stage=stage)
Customer.objects.create(workspace=ws, external_id="C1", email="ana@example.com", language="ro")
save_survey(ws, code="after-visit", name="After visit", kind="transactional",
            definition=default_definition("Shop"),
            rules={"touchpoints": ["store-visit"], "send_window": None}, via="cli")
"""
INGEST = """
from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.interactions.services import ingest_interactions
ws = Workspace.objects.get(slug="shop")
now = clock.now().isoformat()
print(ingest_interactions(ws, [
    {"source": "crm", "external_id": "V1", "customer": "C1", "type": "visit",
     "occurred_at": now, "touchpoint": "store-visit"},
]).accepted)
"""
RESEND = """
from cxloop.surveys.models import Invitation
from cxloop.surveys.tasks import send_invitations
inv = Invitation.objects.get()
send_invitations.delay([inv.pk], False)
send_invitations.delay([inv.pk], False)
"""
STATUS = """
from cxloop.surveys.models import Invitation
print(Invitation.objects.get().status)
"""


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not redis_up() and not os.environ.get("CI"), reason="no Redis on 6379")
def test_interaction_to_email_through_a_celery_worker(tmp_path: Path) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=12).flushdb()
    inbox = Mailbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env |= {
        "CXLOOP_VAR_DIR": str(tmp_path),
        "DEBUG": "true",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/12",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "DISPATCH_INTERVAL": "1",
        "SITE_URL": "http://cx.example.test",
    }

    def cxloop(script: str) -> str:
        done = subprocess.run(
            [str(BIN / "cxloop"), "shell", "--no-imports", "-c", script],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    subprocess.run([str(BIN / "cxloop"), "migrate", "-v", "0"], env=env, check=True, timeout=120)
    cxloop(SETUP)
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "cxloop", "worker", "-B", "-Q", "default,delivery",
         "--pool", "solo", "--without-gossip", "--without-mingle", "-l", "warning",
         "--schedule", str(tmp_path / "beat-schedule")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert cxloop(INGEST).splitlines()[-1] == "1"
        for _ in range(60):
            if inbox.messages:
                break
            time.sleep(0.5)
        assert len(inbox.messages) == 1, "no e-mail within 30 s"
        message = inbox.messages[0]
        assert message["To"] == "ana@example.com"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        html = next(
            part.get_content() for part in message.walk() if part.get_content_type() == "text/html"
        )
        links = [f"?score={n}" for n in range(11)]
        assert all(link in html for link in links)
        assert cxloop(STATUS).splitlines()[-1] == "sent"
        # The same send task delivered twice more: still one e-mail.
        cxloop(RESEND)
        time.sleep(3)
        assert len(inbox.messages) == 1
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        smtp.stop()
