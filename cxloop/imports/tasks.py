from __future__ import annotations

from celery import shared_task

from . import jobs


@shared_task(name="imports.run_import_job", acks_late=True)
def run_import_job(job_id: int) -> None:
    jobs.run_job(job_id)


@shared_task(name="imports.requeue_stuck", expires=300)
def requeue_stuck_imports() -> int:
    return jobs.requeue_stuck()


@shared_task(name="imports.purge_old_files", expires=3000)
def purge_old_import_files() -> int:
    return jobs.purge_old_files()
