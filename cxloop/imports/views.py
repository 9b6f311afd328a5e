from __future__ import annotations

from pathlib import Path

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from cxloop.accounts.models import Permission
from cxloop.accounts.services import audit
from cxloop.core.permissions import workspace_required

from .forms import UploadForm
from .jobs import create_job
from .models import ImportJob
from .reader import CUSTOMER_FIELDS, INTERACTION_FIELDS


@workspace_required(Permission.IMPORT_DATA)
def import_list(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        job = create_job(
            workspace, form.cleaned_data["kind"], form.cleaned_data["file"],
            user=request.user, mapping=form.cleaned_data["mapping"],
        )  # fmt: skip
        return redirect("imports:detail", pk=job.pk)
    jobs = ImportJob.objects.filter(workspace=workspace)[:50]
    return render(
        request,
        "imports/list.html",
        {"form": form, "jobs": jobs, "customer_fields": CUSTOMER_FIELDS,
         "interaction_fields": INTERACTION_FIELDS},
    )  # fmt: skip


@workspace_required(Permission.IMPORT_DATA)
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = ImportJob.get_for_workspace(request.workspace, pk=pk)  # type: ignore[attr-defined]
    return render(request, "imports/detail.html", {"job": job})


@workspace_required(Permission.IMPORT_DATA)
def import_rejects(request: HttpRequest, pk: int) -> FileResponse:
    job = ImportJob.get_for_workspace(request.workspace, pk=pk)  # type: ignore[attr-defined]
    if not job.rejects_path or not Path(job.rejects_path).is_file():
        raise Http404("this import rejected no rows")
    audit(job.workspace, "export.import_rejects", via="web", actor=request.user, obj=job)
    return FileResponse(
        Path(job.rejects_path).open("rb"), as_attachment=True,
        filename=f"{Path(job.file_name).stem}.rejects.csv", content_type="text/csv",
    )  # fmt: skip
