"""Web import jobs: claimed once, reported, and recovered after a lost message or worker."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from cxloop.accounts.models import AuditLog, Role, Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.imports import jobs
from cxloop.imports.models import ImportJob, ImportStatus

pytestmark = pytest.mark.django_db
CSV = "external_id;name;phone\nC1;Ana;+37369111222\nC2;Ion;12\n".encode("cp1251")


def queued(workspace: Workspace, tmp_path: Any, content: bytes = CSV) -> ImportJob:
    path = tmp_path / f"upload-{ImportJob.objects.count()}.csv"
    path.write_bytes(content)
    return ImportJob.objects.create(
        workspace=workspace, kind="customers", file_name="c.csv", path=str(path),
        size_bytes=len(content),
    )  # fmt: skip


def test_a_job_runs_once_even_when_its_task_is_delivered_twice(
    workspace: Workspace, tmp_path: Any
) -> None:
    job = queued(workspace, tmp_path)

    jobs.run_job(job.pk)
    Customer.objects.all().delete()
    jobs.run_job(job.pk)  # the second delivery finds it claimed and does nothing

    job.refresh_from_db()
    assert job.status == ImportStatus.DONE
    assert (job.rows, job.created, job.rejected) == (2, 1, 1)
    assert job.sample_errors[0]["line"] == 3
    assert job.attempts == 1
    assert Customer.objects.count() == 0


def test_a_job_whose_upload_is_gone_fails_with_a_clear_message(
    workspace: Workspace, tmp_path: Any
) -> None:
    job = queued(workspace, tmp_path)
    Path(job.path).unlink()
    jobs.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert "upload it again" in job.message


def test_a_file_that_cannot_be_imported_fails_the_job_with_the_reason(
    workspace: Workspace, tmp_path: Any
) -> None:
    job = queued(workspace, tmp_path, b"name\nAna\n")
    jobs.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert "external_id" in job.message


def test_lost_jobs_are_queued_again_and_finish(
    workspace: Workspace, tmp_path: Any, monkeypatch: Any
) -> None:
    never_started = queued(workspace, tmp_path)
    dead_worker = queued(workspace, tmp_path)
    long_ago = clock.now() - dt.timedelta(minutes=30)
    ImportJob.objects.filter(pk=never_started.pk).update(created_at=long_ago)
    ImportJob.objects.filter(pk=dead_worker.pk).update(
        created_at=long_ago, status=ImportStatus.RUNNING, heartbeat_at=long_ago, attempts=1
    )
    fresh = queued(workspace, tmp_path)  # just uploaded: its task is still on its way
    sent: list[int] = []
    monkeypatch.setattr("cxloop.imports.tasks.run_import_job.delay", sent.append)

    assert jobs.requeue_stuck() == 2

    assert sorted(sent) == sorted([never_started.pk, dead_worker.pk])
    assert fresh.pk not in sent
    for pk in sent:
        jobs.run_job(pk)
    assert ImportJob.objects.get(pk=dead_worker.pk).status == ImportStatus.DONE


def test_a_job_that_keeps_dying_is_failed_not_looped(workspace: Workspace, tmp_path: Any) -> None:
    job = queued(workspace, tmp_path)
    long_ago = clock.now() - dt.timedelta(minutes=30)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.RUNNING, heartbeat_at=long_ago, attempts=jobs.MAX_ATTEMPTS,
        created_at=long_ago,
    )  # fmt: skip
    jobs.requeue_stuck()
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.FAILED


def test_uploading_through_the_page_imports_and_reports(
    workspace: Workspace, make_user: Any, settings: Any, tmp_path: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    settings.IMPORT_DIR = tmp_path
    client = Client()
    client.force_login(make_user(workspace, Role.CX_MANAGER))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/imports/", {
            "kind": "customers", "file": SimpleUploadedFile("clients.csv", CSV),
            "mapping": "phone = phone",
        })  # fmt: skip
    response = client.get(response["Location"])

    job = ImportJob.objects.get()
    assert job.status == ImportStatus.DONE
    assert job.created_by is not None
    assert b"line" in response.content.lower() or b"Line" in response.content
    assert Customer.objects.get().name == "Ana"
    rejects = client.get(f"/imports/{job.pk}/rejects.csv")
    assert rejects.status_code == 200
    assert b"C2;Ion;12" in b"".join(rejects.streaming_content)  # type: ignore[attr-defined]
    assert AuditLog.objects.filter(action="export.import_rejects").exists()


def test_a_bad_mapping_line_is_shown_on_the_form(workspace: Workspace, make_user: Any) -> None:
    client = Client()
    client.force_login(make_user(workspace))
    response = client.post("/imports/", {
        "kind": "customers", "file": SimpleUploadedFile("c.csv", CSV), "mapping": "oops",
    })  # fmt: skip
    assert response.status_code == 200
    assert "Line 1" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_another_workspaces_job_is_not_found(
    workspace: Workspace, other_workspace: Workspace, make_user: Any, tmp_path: Any
) -> None:
    job = queued(other_workspace, tmp_path)
    client = Client()
    client.force_login(make_user(workspace))
    assert client.get(f"/imports/{job.pk}").status_code == 404
    assert client.get(f"/imports/{job.pk}/rejects.csv").status_code == 404


def test_the_upload_is_deleted_once_imported_and_old_rejects_are_purged(
    workspace: Workspace, tmp_path: Any
) -> None:
    job = queued(workspace, tmp_path)
    jobs.run_job(job.pk)
    job.refresh_from_db()
    assert not Path(job.path).exists()  # every row is in the database or in the rejects file
    assert Path(job.rejects_path).exists()

    assert jobs.purge_old_files() == 0  # finished just now: kept for download
    ImportJob.objects.filter(pk=job.pk).update(finished_at=clock.now() - dt.timedelta(days=31))
    assert jobs.purge_old_files() == 1

    rejects = Path(job.rejects_path)
    job.refresh_from_db()
    assert job.rejects_path == "" and job.sample_errors == []
    assert not rejects.exists()
