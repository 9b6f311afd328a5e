"""``make run``'s first step: the demo workspace (once) and an admin login, printed."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from cxloop.accounts.models import Membership, Role, Workspace
from cxloop.accounts.services import set_membership

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
        self.stdout.write(
            f"\ncxloop is starting at http://127.0.0.1:{port}/\nLog in with:\n{login}\n"
        )
