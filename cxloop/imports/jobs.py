"""Web imports: the upload is kept on disk and imported by a task that reports progress."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext_noop

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import audit
from cxloop.core import clock

from .models import ImportJob, ImportStatus
from .reader import CsvError, CsvFile
from .services import ImportReport, import_csv

log = logging.getLogger(__name__)

# A queued job that no worker started in this time has lost its message.
STUCK_AFTER = dt.timedelta(minutes=5)
MAX_ATTEMPTS = 3


def create_job(
    workspace: Workspace, kind: str, upload: UploadedFile, *, user: Any, mapping: dict[str, str]
) -> ImportJob:
    folder = Path(settings.IMPORT_DIR) / workspace.slug / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "upload.csv"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    from .tasks import run_import_job

    with transaction.atomic():
        job = ImportJob.objects.create(
            workspace=workspace, kind=kind, file_name=(upload.name or "upload.csv")[:255],
            path=str(path), mapping=mapping, size_bytes=path.stat().st_size, created_by=user,
        )  # fmt: skip
        audit(workspace, "import.started", via="web", actor=user, obj=job,
              changes={"kind": kind, "file": job.file_name})  # fmt: skip
        transaction.on_commit(lambda: run_import_job.delay(job.pk))
    return job


def run_job(job_id: int) -> None:
    # Claimed by a conditional UPDATE: a task delivered twice runs the import once.
    now = clock.now()
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportStatus.QUEUED).update(
        status=ImportStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return
    job = ImportJob.objects.select_related("workspace").get(pk=job_id)
    path = Path(job.path)
    if not path.is_file():
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, finished_at=clock.now(),
            message=gettext_noop("The uploaded file is no longer on the server; upload it again."),
        )  # fmt: skip
        return

    def progress(csv_file: CsvFile, report: ImportReport) -> None:
        ImportJob.objects.filter(pk=job.pk).update(
            processed_bytes=csv_file.bytes_read, rows=report.rows,
            accepted=report.result.accepted, duplicates=report.result.duplicates,
            rejected=report.result.rejected, encoding=report.encoding,
            delimiter=report.delimiter, heartbeat_at=clock.now(),
        )  # fmt: skip

    try:
        report = import_csv(job.workspace, job.kind, path, mapping=job.mapping or None,
                            rejects_path=path.with_name("rejects.csv"), progress=progress)  # fmt: skip
    except CsvError as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, message=str(exc), finished_at=clock.now()
        )
        path.unlink(missing_ok=True)
        return
    except Exception:
        path.unlink(missing_ok=True)
        log.exception("import_failed job=%s", job.pk)
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, finished_at=clock.now(),
            # Kept in English; the report page translates it when it shows it.
            message=gettext_noop("The import stopped on an internal error; the rows before it "
                                 "are saved. Importing the same file again is safe."),
        )  # fmt: skip
        raise
    r = report.result
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.DONE, finished_at=clock.now(), processed_bytes=job.size_bytes,
        rows=report.rows, accepted=r.accepted, duplicates=r.duplicates, rejected=r.rejected,
        created=r.created, updated=r.updated, unchanged=r.unchanged,
        sample_errors=report.sample_errors, ignored_columns=report.ignored_columns,
        encoding=report.encoding, delimiter=report.delimiter,
        rejects_path=str(report.rejects_path or ""), message=report.summary(),
    )  # fmt: skip
    # The upload holds personal data and every row of it is now in the database: drop it.
    path.unlink(missing_ok=True)
    log.info("import_done job=%s rows=%s rejected=%s", job.pk, report.rows, r.rejected)


def requeue_stuck() -> int:
    """Queue again what a lost message or a dead worker left behind.

    A job queued for a while was never picked up; a running job whose heartbeat stopped lost
    its worker. Importing is idempotent, so the job simply starts over; after MAX_ATTEMPTS it is
    marked failed instead of looping.
    """
    from .tasks import run_import_job

    cutoff = clock.now() - STUCK_AFTER
    dead = ImportJob.objects.filter(status=ImportStatus.RUNNING, heartbeat_at__lt=cutoff)
    dead.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=ImportStatus.FAILED, finished_at=clock.now(),
        message=gettext_noop("The import stopped several times; the rows before it are saved."),
    )  # fmt: skip
    dead.update(status=ImportStatus.QUEUED)
    stuck = list(
        ImportJob.objects.filter(status=ImportStatus.QUEUED, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for pk in stuck:
        run_import_job.delay(pk)
    return len(stuck)


def purge_old_files() -> int:
    """Delete the rejects files of imports finished more than IMPORT_RETENTION_DAYS ago."""
    cutoff = clock.now() - dt.timedelta(days=settings.IMPORT_RETENTION_DAYS)
    old = ImportJob.objects.filter(finished_at__lt=cutoff).exclude(rejects_path="")
    purged = 0
    for job in old.only("pk", "path", "rejects_path"):
        Path(job.rejects_path).unlink(missing_ok=True)
        Path(job.path).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            Path(job.path).parent.rmdir()  # the job's own folder, once empty
        ImportJob.objects.filter(pk=job.pk).update(rejects_path="", sample_errors=[])
        purged += 1
    return purged
