"""Where a batch's time goes: cProfile of ``ingest_interactions`` in-process.

``python -m benchmarks.profile_batch [--backend postgres|sqlite] [--rows N]`` builds a
throw-away database like the benchmark does, then profiles the service behind both the batch
API and the CSV import on batches of 10,000 items (no HTTP, no JSON parsing), and prints the
functions that take the most time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

from . import data
from .backends import STRIPPED_ENV, Backend, Postgres, Sqlite
from .run import BATCH_SIZE, prepare


def profile(backend: Backend, rows: int, customers: int, top: int) -> None:
    seed = prepare(backend, customers)
    items = [data.api_item(r) for r in data.make_rows(rows, seed)]
    for name in STRIPPED_ENV:
        os.environ.pop(name, None)
    os.environ.update(backend.env())
    import django

    django.setup()
    from cxloop.accounts.models import Workspace
    from cxloop.interactions.services import ingest_interactions

    workspace = Workspace.objects.get(slug=seed.slug)
    batches = [items[i : i + BATCH_SIZE] for i in range(0, len(items), BATCH_SIZE)]
    ingest_interactions(workspace, batches[0])  # warm: imports, connection, caches
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for batch in batches[1:]:
        result = ingest_interactions(workspace, batch)
        if result.accepted != len(batch):
            raise SystemExit(
                f"only {result.accepted} of {len(batch)} accepted: {result.errors[:3]}"
            )
    profiler.disable()
    seconds = time.perf_counter() - started
    n = sum(len(b) for b in batches[1:])
    print(
        f"{backend.name}: {n:,} items in {seconds:.2f} s under the profiler ({n / seconds:,.0f}/s)"
    )
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(r"cxloop|psycopg|pydantic|sqlite", top)
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_batch")
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    backend: Backend = Postgres() if args.backend == "postgres" else Sqlite()
    try:
        profile(backend, max(args.rows, 2 * BATCH_SIZE), args.customers, args.top)
    finally:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()  # or PostgreSQL refuses to drop the database
        backend.destroy()


if __name__ == "__main__":
    main()
