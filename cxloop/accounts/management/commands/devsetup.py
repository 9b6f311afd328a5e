"""``make run``'s first step: the demo workspace (once) and an admin login, printed."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count, Q
from django.test.utils import override_settings

from cxloop.accounts.models import Membership, Role, Workspace
from cxloop.accounts.services import authenticate_api_key, create_api_key, set_membership

USERNAME = "admin"


class Command(BaseCommand):
    help = "Load the demo workspace once and make sure an admin login exists; print the login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        if not Workspace.objects.filter(slug="demo").exists():
            self.stdout.write("Loading the demo workspace (once)…")
            call_command("demo", workspace="demo", customers=options["customers"],
                         seed=options["seed"])  # fmt: skip
        workspace = Workspace.objects.get(slug="demo")
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        password_file = settings.VAR_DIR / "admin_password"
        User = get_user_model()
        user = User.objects.filter(username=USERNAME).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(USERNAME, "admin@example.com", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        if not Membership.objects.filter(workspace=workspace, user=user).exists():
            set_membership(workspace, user, Role.ADMIN, via="cli")
        port = os.environ.get("PORT", "8000")
        saved = password_file.read_text().strip() if password_file.exists() else ""
        if not saved or not user.check_password(saved):
            saved = "(changed since it was generated; reset it with: cxloop changepassword admin)"
        login = f"  user:     {USERNAME}\n  password: {saved}"
        login += "\n" + self._supervisor(workspace)
        login += "\n" + self._api_key(workspace, port)
        self.stdout.write(
            f"\ncxloop is starting at http://127.0.0.1:{port}/\nLog in with:\n{login}\n"
        )

    def _supervisor(self, workspace: Workspace) -> str:
        """A supervisor's login on the demo employee with the most open cases, to try the
        inbox and the call-back (password kept in var/supervisor_password)."""
        from cxloop.cases import services as cases
        from cxloop.cases.models import ReasonCode
        from cxloop.organisation.models import Employee

        if not ReasonCode.objects.filter(workspace=workspace).exists():
            # A demo loaded before the closed loop existed: add it once.
            from cxloop.demo import cases as demo_cases
            from cxloop.demo.generator import default_end

            demo_cases.build(workspace, default_end(), 1)
        User = get_user_model()
        password_file = settings.VAR_DIR / "supervisor_password"
        user = User.objects.filter(username="supervisor").first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user("supervisor", "supervisor@example.com", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            # Deadlines that passed while nobody ran the heartbeat escalate now, as they would
            # (their e-mails would go to the demo's made-up addresses: kept out of the console).
            with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
                cases.tick()
            busiest = (
                Employee.objects.filter(workspace=workspace, user__isnull=True)
                .annotate(open_cases=Count("assigned_cases", filter=Q(
                    assigned_cases__status__in=["open", "in_progress"])))
                .order_by("-open_cases", "code")
                .first()
            )  # fmt: skip
            if busiest is not None:
                busiest.user = user
                busiest.save(update_fields=["user"])
        if not Membership.objects.filter(workspace=workspace, user=user).exists():
            set_membership(workspace, user, Role.SUPERVISOR, via="cli")
        saved = password_file.read_text().strip() if password_file.exists() else ""
        if not saved or not user.check_password(saved):
            saved = "(changed since it was generated)"
        return f"A supervisor, to try the inbox at /cases/:\n  user:     supervisor\n  password: {saved}"

    def _api_key(self, workspace: Workspace, port: str) -> str:
        """A development API key (kept in var/api_key) and a request to try the survey flow."""
        key_file = settings.VAR_DIR / "api_key"
        raw = key_file.read_text().strip() if key_file.exists() else ""
        if not raw or authenticate_api_key(raw) is None:
            _, raw = create_api_key(
                workspace, "make run (development)", ["ingest", "read", "admin"], via="cli"
            )
            key_file.write_text(raw + "\n")
            key_file.chmod(0o600)
        import datetime as dt

        from cxloop.core import clock
        from cxloop.customers.models import Customer

        # Someone the demo's after-visit survey may ask now: reachable by e-mail, consenting,
        # not unsubscribed and not surveyed within the 30-day quiet period.
        customer = (
            Customer.objects.filter(workspace=workspace)
            .exclude(email="")
            .exclude(consent__email=False)
            .exclude(suppressions__isnull=False)
            .exclude(invitations__scheduled_for__gte=clock.now() - dt.timedelta(days=31))
            .order_by("external_id")
            .values_list("external_id", flat=True)
            .first()
        )
        text = f"API key (also in {key_file}):\n  {raw}"
        if customer:
            body = (
                '{\\"source\\": \\"try\\", \\"external_id\\": \\"visit-$(date +%s)\\", '
                f'\\"customer\\": \\"{customer}\\", \\"type\\": \\"visit\\", '
                '\\"occurred_at\\": \\"$(date -u +%FT%TZ)\\", \\"touchpoint\\": \\"store-visit\\"}'
            )
            text += (
                "\nTry the survey flow (the dispatcher prints the e-mail, or sends it to "
                "EMAIL_HOST):\n"
                f"  curl -X POST http://127.0.0.1:{port}/api/v1/interactions "
                f'-H "Authorization: Bearer {raw}" -H "Content-Type: application/json" '
                f'-d "{body}"'
            )
        return text
