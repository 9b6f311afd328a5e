"""The loop both outgoing-webhook engines share: claim due deliveries in batches and post them,
one thread per receiving endpoint (in order), recording every outcome on this connection."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

D = TypeVar("D")  # a claimed delivery row
A = TypeVar("A")  # one attempt to post it


def due_ids(model: Any, now: Any, batch: int) -> list[int]:
    """The ids of ``model``'s pending deliveries due at ``now`` for an active endpoint, oldest
    first, at most ``batch`` (a delivery model with ``status``, ``next_attempt_at`` and an
    ``endpoint`` with ``is_active``)."""
    return list(
        model.objects.filter(status="pending", next_attempt_at__lte=now, endpoint__is_active=True)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:batch]
    )


def drain(
    *,
    due: Callable[[], list[int]],
    claim: Callable[[list[int]], Iterable[D]],
    attempt: Callable[[D], A],
    post_in_order: Callable[[list[A]], list[A]],
    record: Callable[[A], str],
    batch: int,
    workers: int,
    budget: float,
    thread_name: str,
) -> dict[str, int]:
    """Counts of what ``record`` answered (delivered, retry, failed…).

    ``due`` lists at most ``batch`` due ids; no new batch is claimed after ``budget`` seconds,
    so a receiver that times out never holds up the heartbeat sharing the loop. Only HTTP runs
    in the threads: every database write stays on the caller's connection.
    """
    counts: Counter[str] = Counter()
    began = time.monotonic()
    with ThreadPoolExecutor(workers, thread_name) as pool:
        while time.monotonic() - began < budget:
            ids = due()
            if not ids:
                break
            per_endpoint: dict[Any, list[A]] = defaultdict(list)
            for delivery in claim(ids):
                per_endpoint[getattr(delivery, "endpoint_id")].append(attempt(delivery))  # noqa: B009
            for attempts in pool.map(post_in_order, per_endpoint.values()):
                for one in attempts:
                    counts[record(one)] += 1
            if len(ids) < batch:
                break
    return dict(counts)
