from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import create_workspace


class Command(BaseCommand):
    help = "Create or list workspaces."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create an empty workspace.")
        create.add_argument("--slug", required=True)
        create.add_argument("--name", required=True)
        sub.add_parser("list", help="List workspaces.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            for ws in Workspace.objects.order_by("slug"):
                self.stdout.write(f"{ws.slug}\t{ws.name}")
            return
        if Workspace.objects.filter(slug=options["slug"]).exists():
            raise CommandError(f"a workspace with slug {options['slug']!r} already exists")
        try:
            workspace = create_workspace(options["slug"], options["name"], via="cli")
        except ValidationError as exc:
            messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(messages) from None
        self.stdout.write(f"Created workspace {workspace.slug} ({workspace.name})")
