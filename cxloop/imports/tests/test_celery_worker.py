"""An upload is imported by a real Celery worker through a real Redis broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SCRIPT = """
from django.core.files.uploadedfile import SimpleUploadedFile
from cxloop.accounts.models import Workspace
from cxloop.imports.jobs import create_job
upload = SimpleUploadedFile("c.csv", "external_id;name\\nC1;Ana\\nC2;Ion\\nC3;Bad;extra\\n".encode())
job = create_job(Workspace.objects.get(slug="shop"), "customers", upload, user=None, mapping={})
print(job.pk)
"""
STATUS = """
from cxloop.imports.models import ImportJob
from cxloop.customers.models import Customer
job = ImportJob.objects.get()
print(job.status, job.created, job.rejected, Customer.objects.count())
"""


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not redis_up() and not os.environ.get("CI"), reason="no Redis on 6379")
def test_a_worker_imports_an_upload_queued_through_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env |= {
        "CXLOOP_VAR_DIR": str(tmp_path),
        "DEBUG": "true",
        # a database of its own on the broker, so nothing else's messages are picked up
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
    }

    def cxloop(*args: str) -> str:
        done = subprocess.run([str(BIN / "cxloop"), *args], env=env, capture_output=True,
                              text=True, timeout=120, check=True)  # fmt: skip
        return done.stdout.strip()

    cxloop("migrate", "-v", "0")
    cxloop("workspace", "create", "--slug", "shop", "--name", "Shop")
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "cxloop", "worker", "-Q", "default", "--pool", "solo",
         "--without-gossip", "--without-mingle", "-l", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        cxloop("shell", "--no-imports", "-c", SCRIPT)
        status = ""
        for _ in range(30):
            status = cxloop("shell", "--no-imports", "-c", STATUS).splitlines()[-1]
            if status.startswith(("done", "failed")):
                break
            time.sleep(1)
        assert status == "done 2 1 2", status
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
