"""The benchmark's interactions, and the same rows as API bodies, a CSV file and COPY data."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = "pos"
TYPES = ("store_visit", "call", "delivery", "service_job")
CODED = ("touchpoint", "branch", "employee", "product", "channel")
CSV_HEADER = ["source", "external_id", "customer", "type", "occurred_at", *CODED, "attr_basket"]
# The columns the service inserts (cxloop.interactions.services.COLUMNS), in its order.
COLUMNS = (
    "workspace_id", "source", "external_id", "customer_id", "type", "occurred_at",
    "touchpoint_id", "branch_id", "employee_id", "product_id", "channel_id", "attributes",
    "created_at",
)  # fmt: skip
TABLE = "interactions_interaction"


@dataclass(frozen=True)
class Row:
    external_id: str
    customer: str
    type: str
    occurred_at: dt.datetime  # aware, UTC
    touchpoint: str
    branch: str
    employee: str
    product: str
    channel: str
    basket: str

    def codes(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in CODED}


@dataclass
class Seed:
    """What ``benchmarks.seed`` built: the workspace, its key and code → id maps."""

    workspace_id: int
    slug: str
    api_key: str
    ids: dict[str, dict[str, int]]  # "customer", "branch", … → {code: id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Seed:
        ids = {name: data[name] for name in ("customer", *CODED)}
        return cls(data["workspace_id"], data["slug"], data["api_key"], ids)


def make_rows(n: int, seed: Seed, prefix: str = "bench") -> list[Row]:
    """``n`` distinct interactions spread over the last year, every reference filled in."""
    return list(iter_rows(n, seed, prefix))


def iter_rows(n: int, seed: Seed, prefix: str = "bench") -> Iterator[Row]:
    """The rows of ``make_rows`` one at a time, for files too big to hold in memory."""
    customers = sorted(seed.ids["customer"])
    codes = {name: sorted(seed.ids[name]) for name in CODED}
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=365)
    for i in range(n):
        yield (
            Row(
                external_id=f"{prefix}-{i:09d}",
                customer=customers[(i * 7919) % len(customers)],
                type=TYPES[i % len(TYPES)],
                occurred_at=start + dt.timedelta(seconds=(i * 150) % (360 * 86400)),
                touchpoint=codes["touchpoint"][i % len(codes["touchpoint"])],
                branch=codes["branch"][i % len(codes["branch"])],
                employee=codes["employee"][(i // 3) % len(codes["employee"])],
                product=codes["product"][(i // 7) % len(codes["product"])],
                channel=codes["channel"][i % len(codes["channel"])],
                basket=f"{(i % 50000) / 100:.2f}",
            )
        )


def iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def api_item(row: Row) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "external_id": row.external_id,
        "customer": row.customer,
        "type": row.type,
        "occurred_at": iso(row.occurred_at),
        **row.codes(),
        "attributes": {"basket": row.basket},
    }


def batch_bodies(rows: list[Row], size: int) -> list[tuple[int, bytes]]:
    """(item count, JSON body) per request of the batch endpoint."""
    bodies = []
    for start in range(0, len(rows), size):
        items = [api_item(r) for r in rows[start : start + size]]
        bodies.append((len(items), json.dumps({"items": items}).encode()))
    return bodies


def write_csv(rows: Iterable[Row], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        for r in rows:
            writer.writerow(
                [
                    SOURCE,
                    r.external_id,
                    r.customer,
                    r.type,
                    iso(r.occurred_at),
                    *r.codes().values(),
                    r.basket,
                ]
            )


def _attributes(row: Row) -> str:
    return json.dumps({"basket": row.basket}, ensure_ascii=False)


def copy_payload(rows: list[Row], seed: Seed, created: dt.datetime) -> bytes:
    """The rows in PostgreSQL's COPY text format (no value here needs escaping)."""
    ids = seed.ids
    created_text = created.isoformat()
    lines = []
    for r in rows:
        lines.append(
            "\t".join(
                (
                    str(seed.workspace_id),
                    SOURCE,
                    r.external_id,
                    str(ids["customer"][r.customer]),
                    r.type,
                    r.occurred_at.isoformat(),
                    str(ids["touchpoint"][r.touchpoint]),
                    str(ids["branch"][r.branch]),
                    str(ids["employee"][r.employee]),
                    str(ids["product"][r.product]),
                    str(ids["channel"][r.channel]),
                    _attributes(r),
                    created_text,
                )
            )
        )
    return ("\n".join(lines) + "\n").encode()


def sqlite_params(rows: list[Row], seed: Seed, created: dt.datetime) -> list[tuple[Any, ...]]:
    """The rows as Django's SQLite backend stores them (naive UTC text datetimes)."""

    def text(value: dt.datetime) -> str:
        return str(value.astimezone(dt.UTC).replace(tzinfo=None))

    ids = seed.ids
    created_text = text(created)
    return [
        (
            seed.workspace_id,
            SOURCE,
            r.external_id,
            ids["customer"][r.customer],
            r.type,
            text(r.occurred_at),
            ids["touchpoint"][r.touchpoint],
            ids["branch"][r.branch],
            ids["employee"][r.employee],
            ids["product"][r.product],
            ids["channel"][r.channel],
            _attributes(r),
            created_text,
        )
        for r in rows
    ]
