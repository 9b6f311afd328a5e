from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from cxloop.core.permissions import workspace_required

from . import services
from .forms import ApiKeyForm, PersonForm, RoleForm
from .middleware import SESSION_KEY
from .models import ApiKey, AuditLog, Membership, Permission, Role


@login_required
@require_POST
def switch_workspace(request: HttpRequest) -> HttpResponse:
    membership = get_object_or_404(
        Membership, user=request.user, workspace_id=request.POST.get("workspace")
    )
    request.session[SESSION_KEY] = membership.workspace_id
    return redirect("home")


@workspace_required(Permission.MANAGE_API_KEYS)
def api_keys(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    new_key = None
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _key, new_key = services.create_api_key(
            workspace, form.cleaned_data["name"], form.cleaned_data["scopes"],
            via="web", actor=request.user,
        )  # fmt: skip
        form = ApiKeyForm()
    keys = ApiKey.objects.filter(workspace=workspace)
    return render(
        request, "accounts/api_keys.html", {"form": form, "keys": keys, "new_key": new_key}
    )


@workspace_required(Permission.MANAGE_API_KEYS)
@require_POST
def revoke_key(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk, workspace=request.workspace)  # type: ignore[attr-defined]
    if services.revoke_api_key(key, via="web", actor=request.user):
        messages.success(request, _("Key “%(name)s” revoked.") % {"name": key.name})
    return redirect("api_keys")


@workspace_required(Permission.CONFIGURE)
def audit_log(request: HttpRequest) -> HttpResponse:
    entries = AuditLog.objects.filter(workspace=request.workspace).select_related(  # type: ignore[attr-defined]
        "actor", "api_key"
    )
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(request, "accounts/audit_log.html", {"page": page})


@workspace_required(Permission.MANAGE_USERS)
def people(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    form = PersonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        membership, created = services.add_person(
            workspace, form.cleaned_data["email"], form.cleaned_data["role"],
            actor=request.user, request=request,
        )  # fmt: skip
        if created:
            message = _("%(email)s is invited: an e-mail with a link to choose a password is on "
                        "its way.")  # fmt: skip
        else:
            message = _("%(email)s now has access to this workspace.")
        messages.success(request, message % {"email": membership.user.email})
        return redirect("people")
    members = (
        Membership.objects.filter(workspace=workspace)
        .select_related("user")
        .order_by("user__email", "user__username")
    )
    return render(
        request,
        "accounts/people.html",
        {"form": form, "members": members, "roles": Role.choices},
    )


@workspace_required(Permission.MANAGE_USERS)
@require_POST
def person(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a member's role (``role``) or remove them (``remove``)."""
    membership = get_object_or_404(
        Membership.objects.select_related("user", "workspace"),
        pk=pk,
        workspace=request.workspace,  # type: ignore[attr-defined]
    )
    try:
        if "remove" in request.POST:
            services.remove_person(membership, actor=request.user)
            messages.success(request, _("Access removed."))
        else:
            form = RoleForm(request.POST)
            if form.is_valid():
                services.change_role(membership, form.cleaned_data["role"], actor=request.user)
                messages.success(request, _("Role changed."))
            else:
                messages.error(request, _("Choose a role from the list."))
    except services.LastAdmin:
        messages.error(request, _("A workspace keeps at least one administrator."))
    return redirect("people")
