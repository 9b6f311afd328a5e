"""Build a benchmark workspace: a small organisation, customers and an API key.

Run as ``python -m benchmarks.seed --slug SLUG --customers N`` with the environment of the
database under test (DATABASE_URL or CXLOOP_VAR_DIR); the last line printed is JSON with the
workspace, the API key and the ids the reference loaders need.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def seed(slug: str, customers: int) -> dict[str, Any]:
    from django.db import transaction

    from cxloop.accounts.services import create_api_key, create_workspace
    from cxloop.customers.models import Customer
    from cxloop.organisation.models import (
        Branch,
        Channel,
        Employee,
        Journey,
        Product,
        Region,
        Stage,
        Team,
        Touchpoint,
    )

    workspace = create_workspace(slug, "Benchmark", via="cli")
    with transaction.atomic():
        region = Region.objects.create(workspace=workspace, code="R1", name="Region 1")
        branches = [
            Branch.objects.create(
                workspace=workspace, region=region, code=f"B{i:02d}", name=f"Branch {i}"
            )
            for i in range(1, 6)
        ]
        teams = [
            Team.objects.create(workspace=workspace, branch=b, code=f"T-{b.code}", name=b.name)
            for b in branches
        ]
        employees = [
            Employee.objects.create(
                workspace=workspace,
                code=f"E{i:03d}",
                name=f"Employee {i}",
                branch=branches[i % len(branches)],
                team=teams[i % len(teams)],
            )
            for i in range(1, 21)
        ]
        products = [
            Product.objects.create(workspace=workspace, code=f"P{i:02d}", name=f"Product {i}")
            for i in range(1, 11)
        ]
        channels = [
            Channel.objects.create(workspace=workspace, code=code, name=code.title())
            for code in ("store", "call", "web", "app")
        ]
        journey = Journey.objects.create(workspace=workspace, code="buy", name="Buy")
        stage = Stage.objects.create(workspace=workspace, journey=journey, code="pay", name="Pay")
        touchpoints = [
            Touchpoint.objects.create(
                workspace=workspace,
                stage=stage,
                channel=channels[i % len(channels)],
                code=f"TP{i}",
                name=f"Touchpoint {i}",
            )
            for i in range(1, 7)
        ]
        Customer.objects.bulk_create(
            (
                Customer(
                    workspace=workspace,
                    external_id=f"C{i:06d}",
                    name=f"Customer {i}",
                    email=f"customer{i}@example.com",
                )
                for i in range(customers)
            ),
            batch_size=2000,
        )
    _key, raw = create_api_key(workspace, "benchmark", ["ingest", "read"], via="cli")
    return {
        "workspace_id": workspace.pk,
        "slug": workspace.slug,
        "api_key": raw,
        "customer": dict(
            Customer.objects.filter(workspace=workspace).values_list("external_id", "pk")
        ),
        "branch": {b.code: b.pk for b in branches},
        "employee": {e.code: e.pk for e in employees},
        "product": {p.code: p.pk for p in products},
        "channel": {c.code: c.pk for c in channels},
        "touchpoint": {t.code: t.pk for t in touchpoints},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slug", required=True)
    parser.add_argument("--customers", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cxloop.settings")
    import django

    django.setup()
    print(json.dumps(seed(args.slug, args.customers)))


if __name__ == "__main__":
    main()
