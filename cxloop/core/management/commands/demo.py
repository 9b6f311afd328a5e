"""``cxloop demo --workspace SLUG --customers N --seed S``: a realistic company to play with."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import audit, create_workspace
from cxloop.demo.generator import TIME_ZONE, DemoOptions, existing_data, generate_demo


class TqdmProgress:
    """One progress bar per stage, on stderr so that stdout keeps only the summary."""

    def __init__(self, disable: bool) -> None:
        self.disable = disable
        self.bar: tqdm[Any] | None = None

    def start(self, stage: str, total: int) -> None:
        self.close()
        self.bar = tqdm(
            total=total, desc=stage, unit="rows", unit_scale=True, file=sys.stderr,
            mininterval=0.5, disable=self.disable or None,
        )  # fmt: skip

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


def utc_date(value: str) -> dt.datetime:
    day = dt.date.fromisoformat(value)
    return dt.datetime.combine(day, dt.time(), dt.UTC)


class Command(BaseCommand):
    help = (
        "Fill a workspace (created if missing) with a realistic demo telecom: organisation, "
        "customers and a year of interactions. The same seed gives the same data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", default="demo", help="Slug (default: demo).")
        parser.add_argument("--name", default="Demo Telecom", help="Name of a new workspace.")
        parser.add_argument("--customers", type=non_negative, default=5000, help="Default: 5000.")
        parser.add_argument("--interactions", type=non_negative, help="Default: 10 per customer.")
        parser.add_argument(
            "--seed", type=non_negative, default=1, help="Same seed, same data (default: 1)."
        )
        parser.add_argument(
            "--months", type=int, default=12, choices=range(1, 121), metavar="1-120",
            help="Length of the history (default: 12).",
        )  # fmt: skip
        parser.add_argument(
            "--end-date", type=utc_date, metavar="YYYY-MM-DD",
            help="The history ends at the start of this UTC day (default: today), "
            "to reproduce a data set exactly on another day.",
        )  # fmt: skip
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        customers: int = options["customers"]
        interactions: int = (
            options["interactions"] if options["interactions"] is not None else 10 * customers
        )
        if interactions and not customers:
            raise CommandError("interactions need customers: give --customers")
        workspace = self._workspace(options["workspace"], options["name"])
        found = existing_data(workspace)
        if found:
            what = ", ".join(f"{count} {name}" for name, count in found.items())
            raise CommandError(
                f"workspace {workspace.slug!r} already has data ({what}); demo data goes only "
                "into an empty workspace, so that it is never duplicated or mixed with real "
                "data. Choose another --workspace."
            )
        demo = DemoOptions(
            customers=customers, interactions=interactions, seed=options["seed"],
            months=options["months"], end=options["end_date"],
        )  # fmt: skip
        progress = TqdmProgress(disable=options["no_progress"])
        try:
            summary = generate_demo(workspace, demo, progress)
        finally:
            progress.close()
        audit(workspace, "demo.generated", via="cli", changes={
            "seed": demo.seed, "customers": customers, "interactions": interactions,
            "months": demo.months,
        })  # fmt: skip
        self.stdout.write(f"Demo data in workspace {workspace.slug} ({workspace.name}), "
                          f"seed {demo.seed}:")  # fmt: skip
        for line in summary.lines():
            self.stdout.write(f"  {line}")

    def _workspace(self, slug: str, name: str) -> Workspace:
        existing = Workspace.objects.filter(slug=slug).first()
        if existing is not None:
            return existing
        try:
            workspace = create_workspace(slug, name, via="cli")
        except ValidationError as exc:
            messages = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(messages) from None
        workspace.time_zone = TIME_ZONE
        workspace.phone_region = "MD"
        workspace.default_language = "ro"
        workspace.save(update_fields=["time_zone", "phone_region", "default_language"])
        return workspace
