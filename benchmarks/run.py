"""``make bench``: ingestion throughput and latency of cxloop on SQLite and PostgreSQL, and the
survey benchmarks (``--suite surveys``, see ``benchmarks/surveys.py``).

For each database: a throw-away database is created and migrated, a workspace is seeded (a small
organisation, customers and an API key), then the same interactions go in four ways, the table
being emptied in between so that each starts from the same state:

1. the raw reference: PostgreSQL ``COPY FROM STDIN`` (or SQLite ``executemany``);
2. the batch API, ``POST /api/v1/interactions/batch``, 10,000 items a request, over HTTP to a
   real gunicorn; then one batch again, which must come back all duplicates;
3. ``cxloop import interactions FILE`` as a subprocess, from a CSV file of the same rows;
4. single-item ``POST /api/v1/interactions`` at a steady rate, for its latency;
5. (PostgreSQL, not with --quick) ``cxloop import`` of a 1,000,000-row file, for its peak
   resident memory.

Row counts are checked after every phase; a failed check makes the exit status 1.

``--suite surveys`` runs only the survey benchmarks (invitations from interaction to a local SMTP
server with one Celery worker; the respondent's page under load), ``--suite cases`` only the
closed loop (response to open case with one Celery worker; the inbox and case pages with 100,000
open cases, see ``benchmarks/cases.py``), ``--suite ingest`` only the above; the default,
``all``, runs the three and prints one report. ``--suite analytics`` (not part of ``all``) loads
10,000,000 responses and times the NPS API and dashboards against DuckDB over a Parquet export
(``benchmarks/analytics.py``). ``--suite text`` (not part of ``all``) times the comment-coding
pipeline and scores BANKING77 (``benchmarks/text.py``), then recodes comments in PostgreSQL
with the product's workers (``benchmarks/text_recode.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import analytics, cases, data, surveys, text, text_recode
from .backends import Backend, Postgres, Sqlite, now, pg_available
from .cpu import CpuMeter, postgres_backends, process_tree
from .latency import LatencyResult, run_open_loop
from .server import BIN, ROOT, WORKERS, Gunicorn, Response, request

BATCH_SIZE = 10_000
API_TARGET = 0.30  # batch API, as a share of PostgreSQL COPY
CSV_TARGET = 0.50  # CSV import, as a share of PostgreSQL COPY
P95_TARGET_MS = 30.0
RSS_TARGET = 500 * 2**20  # peak resident memory of a 1,000,000-row CSV import


@dataclass
class Measure:
    backend: str
    path: str
    rows: int
    seconds: float
    target: float | None = None  # share of PG COPY; None for a reference
    note: str = ""
    app_cpu: float | None = None  # CPU seconds of cxloop's processes (or of SQLite in-process)
    db_cpu: float | None = None  # CPU seconds of the PostgreSQL backends

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class LatencyMeasure:
    backend: str
    result: LatencyResult
    rate: float
    app_cpu: float | None
    db_cpu: float | None


class PhaseCpu:
    """CPU used during a phase by cxloop (the gunicorn workers, or the ``cxloop`` subprocesses
    this process waited for) and by the PostgreSQL backends of the benchmark's database."""

    def __init__(self, backend: Backend, server: Gunicorn | None = None) -> None:
        self.app_meter = CpuMeter(process_tree(server.pid)) if server else None
        self.db_meter = (
            CpuMeter(postgres_backends(backend.dbname), interval=0.5)
            if isinstance(backend, Postgres)
            else None
        )
        self.children = 0.0
        self.app: float | None = None
        self.db: float | None = None

    @staticmethod
    def _children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> PhaseCpu:
        for meter in (self.app_meter, self.db_meter):
            if meter:
                meter.__enter__()
        self.children = self._children()
        return self

    def __exit__(self, *exc: object) -> None:
        for meter in (self.app_meter, self.db_meter):
            if meter:
                meter.__exit__(None, None, None)
        children = self._children() - self.children
        app = self.app_meter.seconds if self.app_meter else 0.0
        self.app = app + children
        self.db = self.db_meter.seconds if self.db_meter else None


@dataclass
class Results:
    measures: list[Measure] = field(default_factory=list)
    latencies: list[LatencyMeasure] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    surveys: surveys.SurveyResults = field(default_factory=surveys.SurveyResults)
    cases: cases.CaseResults = field(default_factory=cases.CaseResults)
    analytics: analytics.AnalyticsResults = field(default_factory=analytics.AnalyticsResults)
    text: text.TextResults = field(default_factory=text.TextResults)
    text_recode: list[text_recode.Run] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, ok, detail))
        if not ok:
            log(f"SANITY CHECK FAILED: {name}: {detail}")
        return ok

    @property
    def failed(self) -> bool:
        return any(not ok for _, ok, _ in self.checks)

    def rate_of(self, backend: str, path_prefix: str) -> float | None:
        for m in self.measures:
            if m.backend == backend and m.path.startswith(path_prefix):
                return m.rate
        return None


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class SetupError(RuntimeError):
    pass


def cxloop(backend: Backend, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "cxloop"), *args],
        cwd=ROOT,
        env=backend.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise SetupError(f"cxloop {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def prepare(backend: Backend, customers: int) -> data.Seed:
    started = time.perf_counter()
    backend.create()
    cxloop(backend, "migrate", "--noinput")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.seed", "--slug", "bench", "--customers", str(customers)],
        cwd=ROOT,
        env=backend.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise SetupError(f"seeding failed ({proc.returncode}):\n{proc.stderr}")
    seed = data.Seed.from_json(json.loads(proc.stdout.strip().splitlines()[-1]))
    backend.analyze()
    log(
        f"{backend.name}: migrated and seeded {customers:,} customers "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return seed


def expect_count(results: Results, backend: Backend, seed: data.Seed, phase: str, n: int) -> None:
    got = backend.count(seed.workspace_id)
    results.check(f"{backend.name}: rows after {phase}", got == n, f"expected {n:,}, found {got:,}")


def reference(results: Results, backend: Backend, seed: data.Seed, rows: list[data.Row]) -> None:
    backend.empty()
    if isinstance(backend, Postgres):
        payload = data.copy_payload(rows, seed, now())
        log(f"postgres: COPY of {len(rows):,} rows ({len(payload) / 1e6:.0f} MB in memory)")
        seconds, db_cpu = backend.copy(payload)
        results.measures.append(
            Measure(
                "postgres",
                "COPY FROM STDIN (reference)",
                len(rows),
                seconds,
                note="psycopg, in-memory text",
                db_cpu=db_cpu,
            )
        )
    elif isinstance(backend, Sqlite):
        params = data.sqlite_params(rows, seed, now())
        log(f"sqlite: executemany INSERT of {len(rows):,} rows")
        seconds, app_cpu = backend.executemany(params)
        results.measures.append(
            Measure(
                "sqlite",
                "executemany INSERT (reference)",
                len(rows),
                seconds,
                note="sqlite3, one transaction",
                app_cpu=app_cpu,
            )
        )
    expect_count(results, backend, seed, "the reference load", len(rows))
    backend.empty()


def warm_up(port: int, key: str) -> None:
    """Touch every code path once per worker (nothing is written: the items are invalid)."""
    invalid = json.dumps({"items": [{}]}).encode()
    for _ in range(WORKERS * 3):
        request(port, "GET", "/api/v1/interactions?limit=1", key=key)
        request(port, "POST", "/api/v1/interactions/batch", body=invalid, key=key)


def post_batches(
    port: int, key: str, bodies: list[tuple[int, bytes]], clients: int
) -> tuple[float, list[Response]]:
    def post(body: tuple[int, bytes]) -> Response:
        return request(port, "POST", "/api/v1/interactions/batch", body=body[1], key=key)

    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=clients)
    try:
        responses = list(pool.map(post, bodies))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an interrupt, send nothing more
    return time.perf_counter() - started, responses


def check_batches(
    results: Results,
    name: str,
    bodies: list[tuple[int, bytes]],
    responses: list[Response],
    *,
    duplicates: bool,
) -> None:
    bad = []
    for (n, _), resp in zip(bodies, responses, strict=True):
        answer = resp.json() if resp.status == 200 else {}
        want = {
            "accepted": 0 if duplicates else n,
            "duplicates": n if duplicates else 0,
            "rejected": 0,
        }
        got = {k: answer.get(k) for k in want}
        if resp.status != 200 or got != want:
            bad.append(f"HTTP {resp.status} {got or resp.body[:300]!r}, expected {want}")
    results.check(name, not bad, "; ".join(bad[:3]) or "")


def batch_api(
    results: Results,
    backend: Backend,
    seed: data.Seed,
    rows: list[data.Row],
    server: Gunicorn,
    clients: int,
) -> None:
    bodies = data.batch_bodies(rows, BATCH_SIZE)
    mb = sum(len(b) for _, b in bodies) / 1e6
    log(
        f"{backend.name}: batch API, {len(bodies)} requests ({mb:.0f} MB of JSON), "
        f"{clients} client(s)"
    )
    with PhaseCpu(backend, server) as cpu:
        seconds, responses = post_batches(server.port, seed.api_key, bodies, clients)
    check_batches(
        results,
        f"{backend.name}: batch API accepted every item",
        bodies,
        responses,
        duplicates=False,
    )
    results.measures.append(
        Measure(
            backend.name,
            "batch API over HTTP",
            len(rows),
            seconds,
            API_TARGET,
            f"{BATCH_SIZE:,}/request, {clients} client(s)",
            cpu.app,
            cpu.db,
        )
    )
    expect_count(results, backend, seed, "the batch API", len(rows))

    first = bodies[:1]
    with PhaseCpu(backend, server) as cpu:
        seconds, responses = post_batches(server.port, seed.api_key, first, 1)
    check_batches(
        results,
        f"{backend.name}: re-posted batch is all duplicates",
        first,
        responses,
        duplicates=True,
    )
    results.measures.append(
        Measure(
            backend.name,
            "batch API re-post (duplicates)",
            first[0][0],
            seconds,
            note="nothing new: all duplicates",
            app_cpu=cpu.app,
            db_cpu=cpu.db,
        )
    )
    expect_count(results, backend, seed, "the duplicate re-post", len(rows))


def import_cli(backend: Backend, seed: data.Seed, path: Path) -> tuple[float, str]:
    """Seconds for ``cxloop import interactions PATH`` as a subprocess, and its summary line."""
    started = time.perf_counter()
    proc = cxloop(
        backend, "import", "interactions", str(path), "--workspace", seed.slug, "--no-progress"
    )
    seconds = time.perf_counter() - started
    lines = proc.stdout.strip().splitlines()
    return seconds, lines[-1] if lines else ""


def csv_import(results: Results, backend: Backend, seed: data.Seed, rows: list[data.Row]) -> None:
    backend.empty()
    path = backend.tmp / "interactions.csv"
    data.write_csv(rows, path)
    # The fixed cost of the command (interpreter, Django, system checks): a header-only file.
    empty = backend.tmp / "empty.csv"
    data.write_csv([], empty)
    fixed, _ = import_cli(backend, seed, empty)
    log(f"{backend.name}: cxloop import interactions ({path.stat().st_size / 1e6:.0f} MB CSV)")
    with PhaseCpu(backend) as cpu:
        seconds, summary = import_cli(backend, seed, path)
    want = f"{len(rows)} rows: {len(rows)} accepted, 0 duplicates, 0 rejected"
    results.check(
        f"{backend.name}: CSV import accepted every row",
        summary.startswith(want),
        f"the command said {summary!r}",
    )
    net = len(rows) / (seconds - fixed) if seconds > fixed else 0.0
    results.measures.append(
        Measure(
            backend.name,
            "CSV import (cxloop CLI)",
            len(rows),
            seconds,
            CSV_TARGET,
            f"incl. {fixed:.1f} s fixed start-up; {net:,.0f} rows/s without it",
            cpu.app,
            cpu.db,
        )
    )
    expect_count(results, backend, seed, "the CSV import", len(rows))


def peak_rss_run(backend: Backend, *args: str) -> tuple[float, int, str]:
    """Run ``cxloop ARGS``; its seconds, peak resident memory (bytes) and last stdout line."""
    started = time.perf_counter()
    with subprocess.Popen(
        [str(BIN / "cxloop"), *args], cwd=ROOT, env=backend.env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        watched = psutil.Process(proc.pid)
        peak = 0
        deadline = time.monotonic() + 1800
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, watched.memory_info().rss)
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0:
        raise SetupError(f"cxloop {' '.join(args)} failed ({proc.returncode}):\n{err}")
    lines = out.strip().splitlines()
    return time.perf_counter() - started, peak, lines[-1] if lines else ""


def memory(results: Results, backend: Backend, seed: data.Seed, n: int) -> None:
    """Peak memory of ``cxloop import`` on a big file: streaming must keep it bounded."""
    backend.empty()
    path = backend.tmp / "big.csv"
    data.write_csv(data.iter_rows(n, seed, prefix="big"), path)
    log(f"{backend.name}: cxloop import interactions, {n:,} rows for peak memory "
        f"({path.stat().st_size / 1e6:.0f} MB CSV)")  # fmt: skip
    seconds, peak, summary = peak_rss_run(
        backend, "import", "interactions", str(path), "--workspace", seed.slug, "--no-progress"
    )
    path.unlink()
    results.check(
        f"{backend.name}: big CSV import accepted every row",
        summary.startswith(f"{n} rows: {n} accepted"),
        f"the command said {summary!r}",
    )
    expect_count(results, backend, seed, "the big CSV import", n)
    status = "OK" if peak < RSS_TARGET else "MISSED"
    results.notes.append(
        f"{backend.name}: cxloop import of {n:,} rows: peak RSS {peak / 2**20:,.0f} MiB "
        f"(target < {RSS_TARGET / 2**20:,.0f} MiB {status}), {seconds:.0f} s, "
        f"{n / seconds:,.0f} rows/s"
    )


def latency(
    results: Results,
    backend: Backend,
    seed: data.Seed,
    server: Gunicorn,
    rate: float,
    seconds: float,
    existing: int,
) -> None:
    total = max(1, round(rate * seconds))
    items = data.make_rows(total, seed, prefix="lat")
    bodies = [json.dumps(data.api_item(r)).encode() for r in items]
    body_for: Callable[[int], bytes] = bodies.__getitem__
    backend.settle()
    log(f"{backend.name}: single-item API at {rate:g}/s for {seconds:g} s")
    with PhaseCpu(backend, server) as cpu:
        result = run_open_loop(server.port, seed.api_key, body_for, rate=rate, seconds=seconds)
    created = result.statuses.get(201, 0)
    results.check(
        f"{backend.name}: single-item API answered 201 every time",
        created == total,
        f"statuses {result.statuses}; {result.errors[:2]}",
    )
    results.latencies.append(LatencyMeasure(backend.name, result, rate, cpu.app, cpu.db))
    expect_count(results, backend, seed, "the single-item API", existing + created)


def bench_backend(results: Results, backend: Backend, args: argparse.Namespace, full: bool) -> None:
    """All phases on one database, or only the reference load when ``full`` is false."""
    try:
        seed = prepare(backend, args.customers)
        rows = data.make_rows(args.rows, seed)
        reference(results, backend, seed, rows)
        if not full:
            return
        with Gunicorn(backend.env(), backend.tmp / "gunicorn.log") as server:
            warm_up(server.port, seed.api_key)
            batch_api(results, backend, seed, rows, server, args.clients)
            csv_import(results, backend, seed, rows)
            latency(results, backend, seed, server, args.rate, args.latency_seconds, len(rows))
        if args.memory_rows and backend.name == "postgres":
            # PostgreSQL takes the importer's two-batches-in-flight path: its worst case.
            memory(results, backend, seed, args.memory_rows)
    finally:
        backend.destroy()


def per(cpu: float | None, count: int, scale: float) -> str:
    if cpu is None or not count:
        return "-"
    return f"{cpu * scale / count:,.1f}"


def pct(value: float | None, ref: float | None) -> str:
    if value is None or not ref:
        return "-"
    return f"{100 * value / ref:.1f}%"


def report_ingestion(results: Results) -> None:
    pg_copy = results.rate_of("postgres", "COPY")
    sqlite_insert = results.rate_of("sqlite", "executemany")
    print()
    header = (
        f"{'backend':<9} {'path':<31} {'rows':>8} {'seconds':>8} {'rows/s':>8} "
        f"{'% PG COPY':>9} {'% SQLite':>8}  {'target':<14} {'app µs/row':>10} {'db µs/row':>9}"
        "  note"
    )
    print(header)
    print("-" * len(header))
    for m in results.measures:
        share = m.rate / pg_copy if pg_copy else None
        if m.target is None:
            target = "reference" if "reference" in m.path else ""
        elif share is None:
            target = f">= {m.target:.0%} n/a"
        else:
            target = f">= {m.target:.0%} " + ("OK" if share >= m.target else "MISSED")
        vs_sqlite = pct(m.rate, sqlite_insert) if m.backend == "sqlite" else "-"
        print(
            f"{m.backend:<9} {m.path:<31} {m.rows:>8,} {m.seconds:>8.2f} {m.rate:>8,.0f} "
            f"{pct(m.rate, pg_copy):>9} {vs_sqlite:>8}  {target:<14} "
            f"{per(m.app_cpu, m.rows, 1e6):>10} {per(m.db_cpu, m.rows, 1e6):>9}  {m.note}"
        )
    if results.latencies:
        print()
        header = (
            f"{'backend':<9} {'single-item POST':<18} {'requests':>8} {'req/s':>7} "
            f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7}  {'target':<21}"
            f" {'app ms/req':>10} {'db ms/req':>9}"
        )
        print(header)
        print("-" * len(header))
        for lm in results.latencies:
            r = lm.result
            p95 = r.percentile(95)
            status = "OK" if p95 < P95_TARGET_MS else "MISSED"
            target = f"p95 < {P95_TARGET_MS:g} ms {status}"
            done = len(r.latencies_ms)
            print(
                f"{lm.backend:<9} {f'open loop {lm.rate:g}/s':<18} {done:>8,} "
                f"{r.rate:>7.1f} {r.percentile(50):>7.1f} {p95:>7.1f} {r.percentile(99):>7.1f} "
                f"{max(r.latencies_ms, default=0):>7.1f}  {target:<21} "
                f"{per(lm.app_cpu, done, 1e3):>10} {per(lm.db_cpu, done, 1e3):>9}"
            )
            if r.late_dispatch:
                print(f"{'':<9} ({r.late_dispatch} requests dispatched > 5 ms late by the client)")
        print()
        print(
            "app/db: CPU time of cxloop's processes (gunicorn workers, the cxloop command; "
            "SQLite works inside them) and of the PostgreSQL backends, per row or request."
        )


def report(
    results: Results, args: argparse.Namespace, pg_version: str | None, load_before: float
) -> None:
    what = []
    if args.suite in ("ingest", "all"):
        what.append(f"ingestion: {args.rows:,} interactions, {args.customers:,} customers")
    if args.suite in ("surveys", "all"):
        what.append(
            f"surveys: {args.invitations:,} invitations, the respondent's page at "
            f"{args.page_rate:g} requests/s for {args.page_seconds:g} s"
        )
    if args.suite in ("cases", "all"):
        what.append(
            f"closed loop: {args.cases:,} open cases, {args.case_responses:,} detractors at "
            f"{args.case_rate:g}/s, pages at {args.case_page_rate:g} requests/s for "
            f"{args.case_page_seconds:g} s"
        )
    if args.suite == "text":
        what.append(f"text: {args.comments:,} comments, BANKING77")
    if args.suite == "analytics":
        what.append(
            f"analytics: {args.responses:,} responses, the NPS API at {args.api_rate:g} "
            f"requests/s for {args.api_seconds:g} s a question"
        )
    print()
    print(
        f"cxloop benchmark ({'; '.join(what)}); "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"PostgreSQL {pg_version or 'not reachable'} at 127.0.0.1:5432; "
        f"SQLite {sqlite3.sqlite_version}; gunicorn {WORKERS} sync workers on loopback"
    )
    print(
        f"Load average before the run: {load_before:.2f} (1 min); anything else running on "
        "the machine skews these figures."
    )
    if results.measures or results.latencies:
        report_ingestion(results)
    surveys.report(results.surveys)
    cases.report(results.cases)
    analytics.report(results.analytics)
    text.report(results.text)
    if results.text_recode:
        text_recode.report(results.text_recode)
    print()
    print("Sanity checks:")
    for name, ok, detail in results.checks:
        print(f"  {'OK  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"))
    for note in results.notes:
        print(note)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--suite",
        choices=["ingest", "surveys", "cases", "analytics", "text", "all"],
        default="all",
        help="Which benchmarks: ingestion, surveys, the closed loop (cases), all three (default) "
        "or analytics (10,000,000 responses; not part of all), or text (comments coded per "
        "second, BANKING77; no database; not part of all).",
    )
    parser.add_argument("--rows", type=int, help="Interactions per phase (default 200,000).")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="A smoke run: 20,000 rows, 5,000 customers, 5 s of latency; 1,000 invitations.",
    )
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgres", "both"],
        default="both",
        help="Surveys: postgres is the Celery worker and the page; sqlite the dispatcher.",
    )
    parser.add_argument("--customers", type=int, help="Customers seeded (default 20,000).")
    parser.add_argument("--latency-seconds", type=float, help="Default 20 (5 with --quick).")
    parser.add_argument("--rate", type=float, default=100.0, help="Single-item requests/s.")
    parser.add_argument(
        "--clients", type=int, default=1, help="Concurrent batch API clients (default 1)."
    )
    parser.add_argument(
        "--memory-rows",
        type=int,
        help="Rows of the CSV imported for peak memory (default 1,000,000; 0 with --quick).",
    )
    parser.add_argument(
        "--invitations",
        type=int,
        help="Surveys: interactions, hence invitations, to deliver (default 5,000; 1,000 quick).",
    )
    parser.add_argument(
        "--page-rate", type=float, default=200.0, help="Surveys: page requests/s (default 200)."
    )
    parser.add_argument(
        "--page-seconds", type=float, help="Surveys: seconds of page load (default 20; 5 quick)."
    )
    parser.add_argument(
        "--cases", type=int, help="Cases: open cases seeded (default 100,000; 10,000 quick)."
    )
    parser.add_argument(
        "--case-responses",
        type=int,
        help="Cases: detractor answers timed to their case (default 300; 50 quick).",
    )
    parser.add_argument(
        "--case-rate", type=float, default=10.0, help="Cases: answers per second (default 10)."
    )
    parser.add_argument(
        "--case-page-rate",
        type=float,
        default=20.0,
        help="Cases: page requests/s (default 20).",
    )
    parser.add_argument(
        "--case-page-seconds",
        type=float,
        help="Cases: seconds of load per page (default 20; 5 quick).",
    )
    parser.add_argument(
        "--responses",
        type=int,
        help="Analytics: responses loaded (default 10,000,000; 1,000,000 quick).",
    )
    parser.add_argument(
        "--comments",
        type=int,
        default=20_000,
        help="Text: generated comments through the pipeline (default 20,000; 2,000 quick).",
    )
    parser.add_argument(
        "--api-rate", type=float, default=5.0, help="Analytics: NPS API requests/s (default 5)."
    )
    parser.add_argument(
        "--api-seconds",
        type=float,
        help="Analytics: seconds of load per question (default 20; 5 quick).",
    )
    args = parser.parse_args(argv)
    args.responses = args.responses or (1_000_000 if args.quick else 10_000_000)
    if args.api_seconds is None:
        args.api_seconds = 5.0 if args.quick else 20.0
    if args.responses < 1 or args.api_rate <= 0 or args.api_seconds <= 0:
        parser.error("--responses, --api-rate and --api-seconds must be positive")
    args.cases = args.cases or (10_000 if args.quick else 100_000)
    args.case_responses = args.case_responses or (50 if args.quick else 300)
    if args.case_page_seconds is None:
        args.case_page_seconds = 5.0 if args.quick else 20.0
    if min(args.cases, args.case_responses, args.case_rate, args.case_page_rate) <= 0 or (
        args.case_page_seconds <= 0
    ):
        parser.error("--cases, --case-responses and the case rates and seconds must be positive")
    args.invitations = args.invitations or (1_000 if args.quick else 5_000)
    if args.page_seconds is None:
        args.page_seconds = 5.0 if args.quick else 20.0
    if args.invitations < 1 or args.page_rate <= 0 or args.page_seconds <= 0:
        parser.error("--invitations, --page-rate and --page-seconds must be positive")
    args.rows = args.rows or (20_000 if args.quick else 200_000)
    args.customers = args.customers or (5_000 if args.quick else 20_000)
    if args.memory_rows is None:
        args.memory_rows = 0 if args.quick else 1_000_000
    if args.latency_seconds is None:
        args.latency_seconds = 5.0 if args.quick else 20.0
    if args.rows < 1 or args.customers < 1 or args.rate <= 0 or args.clients < 1:
        parser.error("--rows, --customers, --rate and --clients must be positive")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that clean up


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    pg_version = pg_available()
    wanted = ["postgres", "sqlite"] if args.backend == "both" else [args.backend]
    ingest = args.suite in ("ingest", "all")
    survey = args.suite in ("surveys", "all")
    closed_loop = args.suite in ("cases", "all") and "postgres" in wanted
    results = Results()
    if pg_version is None and args.suite != "text":
        if "postgres" in wanted:
            print("PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres)", file=sys.stderr)
            return 2
        results.notes.append("PostgreSQL not reachable: no COPY reference, shares are n/a.")
    if (closed_loop or (survey and "postgres" in wanted)) and not surveys.redis_available():
        print(
            f"Redis is not reachable at {surveys.REDIS_HOST}:{surveys.REDIS_PORT} (the survey "
            "benchmarks' Celery broker); use --suite ingest or --backend sqlite",
            file=sys.stderr,
        )
        return 2
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    Backend.pycache = Path(tempfile.mkdtemp(prefix="cxloop-bench-pycache-"))
    try:
        if ingest and pg_version is not None:
            # SQLite is compared with PostgreSQL COPY too, so COPY is measured in every run.
            bench_backend(results, Postgres(), args, full="postgres" in wanted)
        if ingest and "sqlite" in wanted:
            bench_backend(results, Sqlite(), args, full=True)
        if survey:
            surveys.bench(
                results.surveys,
                results.check,
                backends=wanted,
                invitations=args.invitations,
                page_rate=args.page_rate,
                page_seconds=args.page_seconds,
            )
        if closed_loop:
            cases.bench(
                results.cases,
                results.check,
                cases=args.cases,
                responses=args.case_responses,
                rate=args.case_rate,
                page_rate=args.case_page_rate,
                page_seconds=args.case_page_seconds,
            )
        elif args.suite == "cases":
            results.notes.append("The closed-loop benchmark needs PostgreSQL: nothing ran.")
        if args.suite == "analytics" and "postgres" in wanted:
            analytics.bench(
                results.analytics,
                results.check,
                responses=args.responses,
                customers=analytics.CUSTOMERS,
                rate=args.api_rate,
                seconds=args.api_seconds,
            )
        elif args.suite == "analytics":
            results.notes.append("The analytics benchmark needs PostgreSQL: nothing ran.")
        if args.suite == "text":
            text.bench(results.text, results.check, comments=args.comments, quick=args.quick)
            if pg_version:
                # The product's path: recoding comments in PostgreSQL with the workers here.
                results.text_recode = text_recode.bench(
                    comments=min(args.comments, 5_000 if args.quick else 20_000)
                )
                linear = next((r for r in results.text_recode if r.kind == "linear"), None)
                if linear is not None:
                    results.check(
                        "1,000,000 comments recoded in PostgreSQL within an hour (linear models)",
                        linear.million_s < text_recode.RECODE_TARGET_S,
                        f"{linear.million_s / 60:.1f} min",
                    )
    except (KeyboardInterrupt, SystemExit):
        results.check("the benchmark ran to its end", False, "interrupted")
        raise
    except Exception as exc:
        traceback.print_exc()
        results.check("the benchmark ran to its end", False, f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(Backend.pycache, ignore_errors=True)
        report(results, args, pg_version, load_before)
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 1 if results.failed else 0
