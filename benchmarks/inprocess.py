"""One request measured inside a Django process (the benchmarks' ``capture`` steps): its CPU
without SQL, the same with the charts drawn afresh (new data), its queries and their time,
and the plan of the slowest (or of every) query."""

from __future__ import annotations

import time
from typing import Any


def measure(client: Any, path: str, explain: str, cold: bool = False) -> dict[str, Any]:
    """``client`` (a ``django.test.Client``) GETs ``path``: once to warm up, three times for
    this process's CPU (the median), with ``cold`` three times more with the chart cache
    emptied first (``cold_cpu_ms``), once with its queries captured. ``explain``: "none", "slowest"
    (EXPLAIN ANALYZE of the slowest query) or "all"."""
    from django.db import DatabaseError, connection
    from django.test.utils import CaptureQueriesContext

    client.get(path)  # warm: templates, translations, vl-convert's engine
    cpu = []
    for _ in range(3):  # this process's CPU for the request: Python's share, without SQL's
        started = time.process_time()
        client.get(path)
        cpu.append(time.process_time() - started)
    # The same with no chart kept from before: what the first request after new data costs
    # (a day refreshed is a new spec); the load test, repeating one URL, mostly hits the cache.
    fresh = []
    for _ in range(3 if cold else 0):
        from cxloop.core import charts

        charts.clear_cache()
        started = time.process_time()
        client.get(path)
        fresh.append(time.process_time() - started)
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        answer = client.get(path)
        seconds = time.perf_counter() - started
    captured = [(float(q["time"]), q["sql"]) for q in queries.captured_queries]
    ranked = sorted(captured, key=lambda q: -q[0])
    chosen = {"none": [], "slowest": ranked[:1], "all": captured}[explain]
    plans = []
    for _, sql in chosen:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                plans.append([sql, "\n".join(str(row[0]) for row in cursor.fetchall())])
        except DatabaseError as exc:  # a statement EXPLAIN does not take
            plans.append([sql, f"(no plan: {exc})"])
    return {
        "status": answer.status_code,
        "ms": 1000 * seconds,
        "cpu_ms": 1000 * sorted(cpu)[1],
        "cold_cpu_ms": 1000 * sorted(fresh)[1] if fresh else None,
        "queries": len(captured),
        "db_ms": 1000 * sum(t for t, _ in captured),
        "slowest": [[1000 * t, sql[:400]] for t, sql in ranked[:3]],
        "plans": plans,
    }


def report(
    info: dict[str, Any],
    missed: set[str],
    queries: dict[str, str],
    notes: list[str],
    python_cost: str,
    target_ms: float | None = None,
) -> None:
    """Fill ``queries`` with each page's one-line summary and, for a page that ``missed`` its
    target, add to ``notes`` where its time went: Python (``python_cost`` names what runs
    there) when SQL is under half its CPU, else its slowest query's plan. With ``target_ms``,
    a request whose CPU in-process with its charts drawn afresh (or SQL) alone reaches the
    target is noted too, even when the load test (which mostly hits the chart cache) met it."""
    for label, row in info.items():
        slowest = row["slowest"][0] if row["slowest"] else [0.0, ""]
        cold = row.get("cold_cpu_ms")
        queries[label] = (
            f"{row['queries']} queries, {row['db_ms']:.0f} ms of SQL "
            f"(slowest {slowest[0]:.0f}), {row['cpu_ms']:.0f} ms of CPU in-process"
            + (f", {cold:.0f} with its charts drawn afresh" if cold is not None else "")
        )
        if target_ms is not None and label not in missed:
            worst = max(cold or 0.0, row["cpu_ms"]) + row["db_ms"]
            if worst >= target_ms:
                notes.append(
                    f"{label}: in-process {row['cpu_ms']:.0f} ms of CPU"
                    + (f" ({cold:.0f} with its charts drawn afresh)" if cold is not None else "")
                    + f" and {row['db_ms']:.0f} ms of SQL: at or over {target_ms:g} ms for a "
                    "first request after new data, whatever the load test's p95."
                )
        if label not in missed:
            continue
        if row["db_ms"] < row["cpu_ms"] / 2:
            notes.append(
                f"{label} missed its target: in-process it spends {row['cpu_ms']:.0f} ms of "
                f"Python CPU and {row['db_ms']:.0f} ms in SQL: the time goes to "
                f"{python_cost}, not to the database."
            )
            continue
        for sql, plan in row["plans"]:
            notes.append(
                f"{label} missed its target; its slowest query ({slowest[0]:.1f} ms of "
                f"{row['db_ms']:.0f} ms of SQL):\n  {sql[:600]} …\n"
                + "\n".join(f"    {line}" for line in plan.splitlines())
            )
