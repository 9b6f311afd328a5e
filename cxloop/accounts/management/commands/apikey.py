from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cxloop.accounts.models import ApiKey
from cxloop.accounts.services import create_api_key, revoke_api_key
from cxloop.core.commands import get_workspace


class Command(BaseCommand):
    help = "Create, list or revoke a workspace's API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key; the key is the last line printed.")
        create.add_argument("--workspace", required=True)
        create.add_argument("--name", required=True)
        create.add_argument("--scopes", default="ingest,read", help="ingest, read, admin")
        listing = sub.add_parser("list")
        listing.add_argument("--workspace", required=True)
        revoke = sub.add_parser("revoke")
        revoke.add_argument("--workspace", required=True)
        revoke.add_argument("prefix", help="The key's first characters, as listed.")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = get_workspace(options["workspace"])
        action = options["action"]
        if action == "create":
            try:
                key, raw = create_api_key(
                    workspace, options["name"], options["scopes"].split(","), via="cli"
                )
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            self.stdout.write(
                f"Created API key {key.name!r} for {workspace.slug} with scopes "
                f"{','.join(key.scopes)}. It is shown once; keep it safe:"
            )
            self.stdout.write(raw)
        elif action == "list":
            for key in ApiKey.objects.filter(workspace=workspace):
                state = "revoked" if key.revoked_at else "active"
                used = key.last_used_at.isoformat() if key.last_used_at else "never"
                self.stdout.write(
                    f"{key.prefix}\t{key.name}\t{','.join(key.scopes)}\t{state}\t{used}"
                )
        else:
            matches = list(ApiKey.objects.filter(workspace=workspace, prefix=options["prefix"]))
            if len(matches) != 1:
                raise CommandError(f"no key of {workspace.slug} with prefix {options['prefix']!r}")
            if not revoke_api_key(matches[0], via="cli"):
                raise CommandError("that key was already revoked")
            self.stdout.write(f"Revoked {matches[0]}")
