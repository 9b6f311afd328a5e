"""In production a real Celery worker codes comments: a response saved by the web process is
coded within seconds by a worker through a real Redis broker, and a new model version's recode
is done by the worker in batches."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cxloop.surveys.tests.test_celery_dispatch import redis_up

BIN = Path(sys.executable).parent
SETUP = """
from cxloop.accounts.services import create_workspace
from cxloop.surveys.tests.factories import make_org, make_survey
ws = create_workspace("shop", "Shop", via="cli")
make_org(ws)
make_survey(ws, "after-visit")
"""
ANSWER = """
from django.db import transaction
from cxloop.core import clock
from cxloop.surveys.models import Response, Survey
from cxloop.surveys.signals import response_saved
survey = Survey.objects.get(code="after-visit")
with transaction.atomic():
    r = Response.objects.create(workspace=survey.workspace, survey=survey, external_id="R1",
        score=2, comment="Очередь на час, никто не извинился", answered_at=clock.now(),
        source="web")
    transaction.on_commit(lambda: response_saved.send(Response, response=r, created=True))
"""
CODED = """
from cxloop.text.models import Comment
c = Comment.objects.filter(analysed_at__isnull=False).first()
print(f"{c.language} {c.sentiment} {c.versions.get('sentiment')}" if c else "-")
"""
RECODE = """
from cxloop.text.models import Comment
from cxloop.text.tasks import recode_workspace
Comment.objects.update(analysed_at=None)
recode_workspace.delay(Comment.objects.get().workspace_id)
"""


@pytest.mark.skipif(not redis_up() and not os.environ.get("CI"), reason="no Redis on 6379")
def test_a_worker_codes_a_new_comment_within_seconds(tmp_path: Path) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=13).flushdb()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env |= {
        "CXLOOP_VAR_DIR": str(tmp_path),
        "DEBUG": "true",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
        "TEXT_EMBEDDINGS": "0",
    }

    def cxloop(script: str) -> str:
        done = subprocess.run(
            [str(BIN / "cxloop"), "shell", "--no-imports", "-c", script],
            env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    def wait_coded() -> str:
        for _ in range(60):
            found = cxloop(CODED).splitlines()[-1]
            if found != "-":
                return found
            time.sleep(0.5)
        return "-"

    subprocess.run([str(BIN / "cxloop"), "migrate", "-v", "0"], env=env, check=True, timeout=120)
    cxloop(SETUP)
    # The web process (no worker yet): the task waits in Redis, nothing is coded in-process.
    cxloop(ANSWER)
    assert cxloop(CODED).splitlines()[-1] == "-"
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "cxloop", "worker", "-Q", "default",
         "--pool", "solo", "--without-gossip", "--without-mingle", "-l", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = time.monotonic()
        assert wait_coded() == "ru negative 0", "not coded by the worker within 30 s"
        assert time.monotonic() - started < 30
        # A recode (after a new model version) is the worker's too.
        cxloop(RECODE)
        assert wait_coded() == "ru negative 0"
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
