"""The survey benchmarks: invitations from interaction to SMTP, and the respondent's page.

Part of ``make bench`` (``--suite surveys`` runs only this; see benchmarks/README.md).

1. **Delivery** (PostgreSQL, the production setup): N customers with an e-mail address and
   consent, a transactional survey on the touchpoint ``store-visit``; ONE Celery worker (solo
   pool) and ``celery beat`` with a real Redis broker, a real SMTP server (aiosmtpd) on
   loopback in a process of its own. N interactions are ingested in one transaction; the clock
   runs from their commit to the N-th message received by the SMTP server. Every customer must
   get exactly one message and every invitation must end ``sent``. The reference, in the same
   run: one process sending the same number of copies of a message cxloop sent to the same
   server over one smtplib connection. On SQLite (for information) the embedded setup's
   ``cxloop dispatcher`` does the same work in-process.
2. **Respondent's page** (PostgreSQL): gunicorn (2 sync workers, DEBUG off) serving
   ``GET /s/<token>`` for distinct sent invitations, open loop at a fixed rate, against
   ``GET /healthz`` at the same rate as the reference; then the one-click answer
   ``GET /s/<token>?score=9`` (records the answer, answers 303), for information.

``python -m benchmarks.surveys profile`` and ``profile-page`` show where a send's and a page's
time goes (cProfile, in-process, on a throw-away database built the same way);
``seed`` and ``ingest`` are the benchmark's own subprocesses, which talk to Django with the
environment of the database under test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psutil

from .backends import Backend, Postgres, Sqlite
from .cpu import CpuMeter, cpu_seconds, postgres_backends, process_tree
from .latency import BROWSER_HEADERS, LatencyResult, browser_get, run_open_loop_get
from .server import BIN, HOST, ROOT, WORKERS, Gunicorn
from .smtp_sink import SmtpSink, send_raw

RATE_TARGET = 200.0  # invitations per second per worker process
PAGE_P95_TARGET_MS = 50.0
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 14  # a db of its own, flushed first
SLUG = "bench-surveys"
SITE_URL = "https://cx.example.com"
FROM_EMAIL = "Benchmark Retail <surveys@cx.example.com>"
LANGUAGES = ("ro", "ru", "en")
WARM_TOKENS = 4 * WORKERS  # invitations used to warm each kind of page request up
PAGE_THREADS = 16  # client threads of the open-loop load (200/s x 16 ms would use 3)

Check = Callable[[str, bool, str], bool]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Delivery:
    backend: str
    path: str
    invitations: int
    seconds: float
    kind: str  # "reference", "target" (>= RATE_TARGET), "info"
    note: str = ""
    worker_cpu: float | None = None  # CPU seconds of the worker (or dispatcher) process
    db_cpu: float | None = None  # CPU seconds of the PostgreSQL backends
    sink_cpu: float | None = None  # CPU seconds of the SMTP server

    @property
    def rate(self) -> float:
        return self.invitations / self.seconds if self.seconds else 0.0


@dataclass
class Page:
    backend: str
    path: str
    rate: float
    result: LatencyResult
    kind: str  # "reference", "target" (p95 < PAGE_P95_TARGET_MS), "info"
    app_cpu: float | None = None
    db_cpu: float | None = None
    client_cpu: float | None = None  # this process: the load generator


@dataclass
class SurveyResults:
    invitations: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def reference_rate(self, backend: str) -> float | None:
        for d in self.deliveries:
            if d.backend == backend and d.kind == "reference":
                return d.rate
        return None

    def reference_p95(self, backend: str) -> float | None:
        for p in self.pages:
            if p.backend == backend and p.kind == "reference":
                return p.result.percentile(95)
        return None


@dataclass
class Seeded:
    workspace_id: int
    survey_id: int
    customers: int
    page_tokens: list[str]
    click_tokens: list[str]
    warm_page: list[str]
    warm_click: list[str]


class SetupError(RuntimeError):
    pass


# --- Subprocesses with Django ---------------------------------------------------------------


def python(backend: Backend, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m benchmarks.surveys ARGS``; the JSON object it printed last."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.surveys", *args],
        cwd=ROOT,
        env=env or backend.env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise SetupError(f"benchmarks.surveys {args[0]} failed ({proc.returncode}):\n{proc.stderr}")
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


def cxloop(backend: Backend, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(BIN / "cxloop"), *args],
        cwd=ROOT,
        env=env or backend.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise SetupError(f"cxloop {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def seed_workspace(customers: int, page: int, click: int, warm: int) -> dict[str, Any]:
    """In the subprocess: the organisation, customers, the survey and sent invitations."""
    from django.db import transaction

    from cxloop.accounts.services import create_workspace
    from cxloop.core import clock
    from cxloop.customers.models import Customer
    from cxloop.organisation.models import (
        Branch,
        Channel,
        Employee,
        Journey,
        Region,
        Stage,
        Touchpoint,
    )
    from cxloop.surveys.definition import default_definition
    from cxloop.surveys.models import DeliveryChannel, Invitation, InvitationStatus
    from cxloop.surveys.services import save_survey

    workspace = create_workspace(SLUG, "Benchmark Retail", via="cli")
    with transaction.atomic():
        region = Region.objects.create(workspace=workspace, code="R1", name="Centre")
        branches = [
            Branch.objects.create(
                workspace=workspace, region=region, code=f"B{i:02d}", name=f"Store No. {i}"
            )
            for i in range(1, 6)
        ]
        employees = [
            Employee.objects.create(
                workspace=workspace,
                code=f"E{i:03d}",
                name=f"Employee{i} Surname",
                branch=branches[i % len(branches)],
            )
            for i in range(1, 21)
        ]
        store = Channel.objects.create(workspace=workspace, code="store", name="Store")
        journey = Journey.objects.create(workspace=workspace, code="buy", name="Buy")
        stage = Stage.objects.create(workspace=workspace, journey=journey, code="pay", name="Pay")
        touchpoint = Touchpoint.objects.create(
            workspace=workspace, stage=stage, channel=store, code="store-visit", name="Store visit"
        )

        def people(prefix: str, n: int) -> list[Customer]:
            return Customer.objects.bulk_create(
                (
                    Customer(
                        workspace=workspace,
                        external_id=f"{prefix}{i:06d}",
                        name=f"Customer {prefix}{i}",
                        email=f"{prefix.lower()}{i:06d}@example.com",
                        language=LANGUAGES[i % len(LANGUAGES)],
                        consent={"email": True},
                    )
                    for i in range(n)
                ),
                batch_size=2000,
            )

        people("C", customers)  # they get the interactions of the delivery benchmark
        people("W", 1)  # the warm-up interaction's customer
        readers = people("P", page + click + 2 * warm)  # already invited: the page's load
    survey = save_survey(
        workspace,
        code="after-visit",
        name="After the visit",
        kind="transactional",
        definition=default_definition("Benchmark Retail"),
        rules={"touchpoints": ["store-visit"], "send_window": None, "quiet_period_days": 0},
        via="cli",
    )
    now = clock.now()
    invitations = Invitation.objects.bulk_create(
        (
            Invitation(
                workspace=workspace,
                survey=survey,
                customer=customer,
                delivery_channel=DeliveryChannel.EMAIL,
                language=customer.language,
                branch=branches[i % len(branches)],
                employee=employees[i % len(employees)],
                channel=store,
                touchpoint=touchpoint,
                status=InvitationStatus.SENT,
                scheduled_for=now,
                sent_at=now,
                expires_at=now + dt.timedelta(days=14),
            )
            for i, customer in enumerate(readers)
        ),
        batch_size=2000,
    )
    tokens = [inv.token for inv in invitations]
    return {
        "workspace_id": workspace.pk,
        "survey_id": survey.pk,
        "customers": customers,
        "page_tokens": tokens[:page],
        "click_tokens": tokens[page : page + click],
        "warm_page": tokens[page + click : page + click + warm],
        "warm_click": tokens[page + click + warm :],
    }


def ingest(prefix: str, customer: str, first: int, count: int, watch: list[int]) -> dict[str, Any]:
    """In the subprocess: one store visit per customer <customer><first>…, in one transaction.

    Returns the wall-clock time of the commit and the CPU seconds the watched processes (the
    worker) had used just before it, so that the worker's CPU is counted from the commit."""
    from django.db import transaction

    from cxloop.accounts.models import Workspace
    from cxloop.core import clock
    from cxloop.interactions.services import ingest_interactions

    workspace = Workspace.objects.get(slug=SLUG)
    occurred = (clock.now() - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    items = [
        {
            "source": "pos",
            "external_id": f"{prefix}-{i:06d}",
            "customer": f"{customer}{i:06d}",
            "type": "store_visit",
            "occurred_at": occurred,
            "touchpoint": "store-visit",
            "channel": "store",
            "branch": f"B{1 + i % 5:02d}",
            "employee": f"E{1 + i % 20:03d}",
        }
        for i in range(first, first + count)
    ]
    accepted = 0
    with transaction.atomic():
        for start in range(0, len(items), 10_000):
            result = ingest_interactions(workspace, items[start : start + 10_000])
            accepted += result.accepted
            if result.errors:
                raise SystemExit(f"rejected: {result.errors[:3]}")
        cpu = sum(tree_cpu(pid) for pid in watch)
        wait = sum(tree_wait(pid) for pid in watch)
    committed_at = time.time()
    return {"accepted": accepted, "committed_at": committed_at, "watch_cpu": cpu, "wait": wait}


def db_backends(dbname: str) -> tuple[Callable[[], list[psutil.Process]], float]:
    """The PostgreSQL backends serving ``dbname``, and how often to poll them.

    Celery's Django fixup closes the database connection before and after every task, so the
    worker's backends live for one task each (a fraction of a second): they must be polled
    often, which ``cpu.postgres_backends`` (a scan of every process) is too costly for. This
    reads the postmaster's children from /proc and each new one's command line once; where
    that is not possible it falls back to ``postgres_backends`` every 0.5 s."""
    postmaster = next(
        (
            proc
            for proc in psutil.process_iter(["name", "ppid"])
            if proc.info["name"] == "postgres" and not _named(proc.info["ppid"], "postgres")
        ),
        None,
    )
    listing = Path(f"/proc/{postmaster.pid}/task/{postmaster.pid}/children") if postmaster else None
    if listing is None or not _readable(listing):
        return postgres_backends(dbname), 0.5
    marker = f" {dbname} "
    known: dict[int, psutil.Process | None] = {}

    def select() -> list[psutil.Process]:
        try:
            pids = {int(pid) for pid in listing.read_text().split()}
        except OSError:
            return []
        for pid in list(known):
            if pid not in pids:
                del known[pid]
        for pid in pids - known.keys():
            try:
                proc = psutil.Process(pid)
                known[pid] = proc if marker in f"{' '.join(proc.cmdline())} " else None
            except psutil.Error:
                known[pid] = None
        return [proc for proc in known.values() if proc is not None]

    return select, 0.05


def _named(pid: int, name: str) -> bool:
    try:
        return bool(psutil.Process(pid).name() == name)
    except psutil.Error:
        return False


def _readable(path: Path) -> bool:
    try:
        path.read_text()
        return True
    except OSError:
        return False


def tree_wait(pid: int) -> float:
    """Seconds a process and its children spent runnable but waiting for a CPU (Linux's
    /proc/PID/schedstat; 0 elsewhere): how much the rest of the machine held them back."""
    total = 0
    for proc in process_tree(pid)():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{proc.pid}/schedstat").read_text().split()[1])
    return total / 1e9


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children so far."""
    total = 0.0
    for proc in process_tree(pid)():
        with contextlib.suppress(psutil.Error):
            total += cpu_seconds(proc)
    return total


# --- Processes under test -------------------------------------------------------------------


def redis_available() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2):
            return True
    except OSError:
        return False


def redis_url() -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


def flush_redis() -> None:
    import redis

    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB).flushdb()


class Service:
    """A long-running command (worker, beat, dispatcher) in its own session, logging to a
    file; stopped with SIGTERM, then SIGKILL for its process group only."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logfile: Path) -> None:
        self.name = name
        self.logfile = logfile
        with logfile.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def services(started: list[Service]) -> Iterator[list[Service]]:
    try:
        yield started
    finally:
        for service in reversed(started):
            service.stop()


def delivery_env(backend: Backend, sink: SmtpSink, broker: bool) -> dict[str, str]:
    env = {
        k: v
        for k, v in backend.env().items()
        if not k.startswith(("EMAIL_", "ANYMAIL_", "DELIVERY_RATE_", "SMS_"))
    }
    env.update(
        EMAIL_HOST=HOST,
        EMAIL_PORT=str(sink.port),
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        DEFAULT_FROM_EMAIL=FROM_EMAIL,
        SITE_URL=SITE_URL,
        DISPATCH_INTERVAL="1",
        DELIVERY_RATE_EMAIL="100000",  # no throttling: the benchmark measures the pipeline
    )
    if broker:
        env["CELERY_BROKER_URL"] = redis_url()
    return env


def start_senders(backend: Backend, env: dict[str, str]) -> list[Service]:
    """PostgreSQL: one Celery worker (solo pool) and beat; SQLite: ``cxloop dispatcher``."""
    tmp = backend.tmp
    if isinstance(backend, Postgres):
        celery = str(BIN / "celery")
        worker = Service(
            "celery worker",
            [celery, "-A", "cxloop", "worker", "-Q", "default,delivery", "--pool", "solo",
             "--concurrency", "1", "--without-gossip", "--without-mingle", "-l", "warning",
             "-n", f"bench{os.getpid()}@%h"],
            env, tmp / "worker.log",
        )  # fmt: skip
        beat = Service(
            "celery beat",
            [celery, "-A", "cxloop", "beat", "-l", "warning",
             "--schedule", str(tmp / "beat-schedule"), "--pidfile", str(tmp / "beat.pid")],
            env, tmp / "beat.log",
        )  # fmt: skip
        return [worker, beat]
    dispatcher = Service(
        "cxloop dispatcher", [str(BIN / "cxloop"), "dispatcher"], env, tmp / "dispatcher.log"
    )
    return [dispatcher]


def wait_for(
    sink: SmtpSink, want: int, senders: list[Service], stall: float = 60.0
) -> dict[str, Any]:
    """Poll the sink until it has ``want`` messages, or nothing arrived for ``stall`` s."""
    stats = sink.stats()
    progress_at, seen = time.monotonic(), stats["messages"]
    while stats["messages"] < want:
        dead = [s for s in senders if not s.alive()]
        if dead:
            raise SetupError(f"{dead[0].name} exited:\n{dead[0].tail()}")
        if time.monotonic() - progress_at > stall:
            break
        time.sleep(0.05)
        stats = sink.stats()
        if stats["messages"] != seen:
            progress_at, seen = time.monotonic(), stats["messages"]
    return stats


def invitation_statuses(backend: Backend, survey_id: int) -> dict[str, int]:
    """Statuses of the invitations made from interactions (not the page's seeded ones)."""
    sql = (
        "SELECT status, count(*) FROM surveys_invitation "
        "WHERE survey_id = {p} AND interaction_id IS NOT NULL GROUP BY status"
    )
    if isinstance(backend, Postgres):
        with backend.connect() as conn:
            rows = conn.execute(sql.format(p="%s"), (survey_id,)).fetchall()
    elif isinstance(backend, Sqlite):
        lite = backend.connect()
        try:
            rows = lite.execute(sql.format(p="?"), (survey_id,)).fetchall()
        finally:
            lite.close()
    else:
        raise TypeError(backend)
    return {str(status): int(n) for status, n in rows}


def prepare(backend: Backend, customers: int, page: int, click: int) -> Seeded:
    started = time.perf_counter()
    backend.create()
    cxloop(backend, "migrate", "--noinput")
    info = python(
        backend, "seed", "--customers", str(customers), "--page", str(page),
        "--click", str(click), "--warm", str(WARM_TOKENS),
    )  # fmt: skip
    backend.analyze()
    log(
        f"{backend.name}: migrated and seeded {customers:,} customers and "
        f"{page + click + 2 * WARM_TOKENS:,} sent invitations in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return Seeded(**info)


def delivery(
    results: SurveyResults, check: Check, backend: Backend, seeded: Seeded, n: int
) -> None:
    """N interactions → N invitations → N messages on the SMTP server, then the reference."""
    name = backend.name
    broker = isinstance(backend, Postgres)
    if broker:
        flush_redis()
    with SmtpSink(backend.env()) as sink:
        env = delivery_env(backend, sink, broker)
        senders = start_senders(backend, env)
        with services(senders):
            # Warm-up: one interaction through the whole pipeline (and proof that it works).
            log(f"{name}: starting {' + '.join(s.name for s in senders)}; warm-up invitation")
            python(
                backend, "ingest", "--prefix", "warm", "--customer", "W", "--count", "1", env=env
            )
            stats = wait_for(sink, 1, senders, stall=90)
            if not check(
                f"{name}: the warm-up invitation reached the SMTP server",
                stats["messages"] == 1,
                f"{stats['messages']} messages; {senders[0].name} said:\n{senders[0].tail()}",
            ):
                return
            sample = backend.tmp / "sample.eml"
            sink.sample(sample)
            sink.reset()
            sink_before = tree_cpu(sink.pid)
            log(f"{name}: {n:,} interactions at store-visit, in one transaction")
            answer = python(
                backend, "ingest", "--prefix", "visit", "--customer", "C", "--count", str(n),
                "--watch", str(senders[0].pid), env=env,
            )  # fmt: skip
            committed = float(answer["committed_at"])
            # The database's CPU from here (the commit was a few milliseconds earlier).
            db_meter = (
                CpuMeter(*db_backends(backend.dbname)) if isinstance(backend, Postgres) else None
            )
            with db_meter or contextlib.nullcontext():
                stats = wait_for(sink, n, senders)
                worker_cpu = tree_cpu(senders[0].pid) - float(answer["watch_cpu"])
                waited = tree_wait(senders[0].pid) - float(answer["wait"])
            sink_cpu = tree_cpu(sink.pid) - sink_before
            # Two more heartbeats: nothing may be sent twice.
            time.sleep(2.5)
            final = sink.stats(full=True)
        if broker:
            flush_redis()  # the worker is gone: leave nothing behind in the broker's database
        statuses = invitation_statuses(backend, seeded.survey_id)
        got = final["messages"]
        check(
            f"{name}: the SMTP server received one message per invitation",
            got == n,
            f"expected {n:,}, received {got:,} (within {stats['last'] - committed:.0f} s)",
        )
        expected = {f"c{i:06d}@example.com" for i in range(n)}
        check(
            f"{name}: every customer got exactly one message",
            final["recipients"] == n == got and set(final["addresses"]) == expected,
            f"{final['recipients']:,} distinct recipients for {got:,} messages; "
            f"{len(expected - set(final['addresses'])):,} customers got none",
        )
        check(
            f"{name}: every invitation is sent",
            statuses == {"sent": n + 1},
            f"statuses {statuses}, expected {{'sent': {n + 1}}}",
        )
        if not got:
            return
        seconds = max(stats["last"] - committed, 1e-9)
        size = final["bytes"] / got if got else 0
        first = stats["first"] - committed if got else 0.0
        span = stats["last"] - stats["first"]
        steady = (got - 1) / span if got > 1 and span > 0 else 0.0
        path = (
            "interaction → SMTP, 1 Celery worker"
            if broker
            else "interaction → SMTP, cxloop dispatcher"
        )
        results.deliveries.append(
            Delivery(
                name,
                path,
                got,
                seconds,
                "target" if broker else "info",
                f"first e-mail after {first:.1f} s, then {steady:,.0f}/s; "
                f"{size / 1000:.1f} kB/message; "
                f"{senders[0].name.split()[-1]} on CPU {worker_cpu / seconds:.0%} of the time, "
                f"waiting for one {waited / seconds:.0%}",
                worker_cpu,
                db_meter.seconds if db_meter else None,
                sink_cpu,
            )
        )
        # The reference: the same message, sent N times over one connection by one process.
        if sample.exists():
            raw = sample.read_bytes()
            sink.reset()
            sink_before = tree_cpu(sink.pid)
            log(f"{name}: reference, {n:,} x {len(raw) / 1000:.1f} kB over one smtplib connection")
            ref_seconds = send_raw(sink.port, raw, n)
            ref = sink.stats()
            check(
                f"{name}: the reference sent every message",
                ref["messages"] == n and ref["recipients"] == n,
                f"{ref['messages']:,} messages, {ref['recipients']:,} recipients, expected {n:,}",
            )
            results.deliveries.insert(
                len(results.deliveries) - 1,
                Delivery(
                    name,
                    "smtplib, 1 connection (reference)",
                    n,
                    ref_seconds,
                    "reference",
                    "a message cxloop sent, re-sent as is",
                    sink_cpu=tree_cpu(sink.pid) - sink_before,
                ),
            )


# --- The respondent's page ------------------------------------------------------------------


def answered(backend: Postgres, tokens: list[str]) -> int:
    with backend.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM surveys_response r "
            "JOIN surveys_invitation i ON i.id = r.invitation_id WHERE i.token = ANY(%s)",
            (tokens,),
        ).fetchone()
        return int(row[0]) if row else 0


def static_root(backend: Backend, env: dict[str, str]) -> str:
    """Where the settings say static files are collected (``STATIC_ROOT``) with ``env``."""
    out = cxloop(
        backend, "shell", "--no-imports", "-c",
        "from django.conf import settings; print(settings.STATIC_ROOT)", env=env,
    )  # fmt: skip
    return out.strip().splitlines()[-1]


def page_env(backend: Backend) -> dict[str, str]:
    env = backend.env() | {"SITE_URL": SITE_URL, "STATIC_ROOT": str(backend.tmp / "static")}
    return env


def collect_static(backend: Backend, env: dict[str, str]) -> str | None:
    """Collect static files into a temporary STATIC_ROOT if the settings read it from the
    environment (never into the working tree); else where the settings put them."""
    root = static_root(backend, env)
    if Path(root) == Path(env["STATIC_ROOT"]):
        cxloop(backend, "collectstatic", "--noinput", env=env)
        return None
    return root


def page_latency(
    results: SurveyResults,
    check: Check,
    backend: Postgres,
    seeded: Seeded,
    rate: float,
    seconds: float,
) -> None:
    name = backend.name
    env = page_env(backend)
    fixed_root = collect_static(backend, env)
    with Gunicorn(env, backend.tmp / "gunicorn.log") as server:
        port = server.port
        # Warm every worker up on each kind of request; look at one page closely.
        pages = [
            (browser_get(port, "/healthz"), browser_get(port, f"/s/{t}")) for t in seeded.warm_page
        ]
        clicks = [browser_get(port, f"/s/{t}?score=9") for t in seeded.warm_click]
        page, click = pages[-1][1], clicks[-1]
        html = page.body.decode(errors="replace")
        check(
            f"{name}: the respondent's page shows the survey",
            page.status == 200 and "score" in html,
            f"HTTP {page.status}: {html[:300]!r}",
        )
        check(
            f"{name}: the one-click link answers 303",
            click.status == 303,
            f"HTTP {click.status}: {click.body[:300]!r}",
        )
        assets = sorted(set(re.findall(r"""(?:href|src)=["'](/static/[^"'?#]+)""", html)))
        served = {a: browser_get(port, a).status for a in assets}
        missing = ", ".join(f"{a}: HTTP {s}" for a, s in served.items() if s != 200)
        if fixed_root is None:
            check(f"{name}: the page's static files are served (WhiteNoise)", not missing, missing)
        elif missing:
            results.notes.append(
                f"Static files not served ({missing}): STATIC_ROOT is fixed at {fixed_root}, not "
                "read from the environment, so the benchmark cannot collect them elsewhere. "
                "Page timings are unaffected (a browser fetches them once)."
            )

        def run(label: str, kind: str, path_for: Callable[[int], str], expect: int) -> Page:
            log(f"{name}: {label} at {rate:g}/s for {seconds:g} s")
            app = CpuMeter(process_tree(server.pid))
            db = CpuMeter(*db_backends(backend.dbname))
            client = time.process_time()
            with app, db:
                result = run_open_loop_get(
                    port, path_for, rate=rate, seconds=seconds, threads=PAGE_THREADS, expect=expect
                )
            client = time.process_time() - client
            good = result.statuses.get(expect, 0)
            check(
                f"{name}: {label} answered {expect} every time",
                good == result.requests,
                f"statuses {result.statuses}; {result.errors[:2]}",
            )
            measured = Page(name, label, rate, result, kind, app.seconds, db.seconds, client)
            results.pages.append(measured)
            return measured

        page_tokens, click_tokens = seeded.page_tokens, seeded.click_tokens
        run("GET /healthz (reference)", "reference", lambda i: "/healthz", 200)
        run("GET /s/<token>", "target", lambda i: f"/s/{page_tokens[i % len(page_tokens)]}", 200)
        one_click = run(
            "GET /s/<token>?score=9",
            "info",
            lambda i: f"/s/{click_tokens[i % len(click_tokens)]}?score=9",
            303,
        )
    done = one_click.result.statuses.get(303, 0)
    want = min(done, len(click_tokens))
    got = answered(backend, click_tokens)
    check(
        f"{name}: every one-click answer was recorded",
        got == want,
        f"{got:,} responses for {want:,} one-click requests answered 303",
    )


# --- The suite ------------------------------------------------------------------------------


def bench(
    results: SurveyResults,
    check: Check,
    *,
    backends: list[str],
    invitations: int,
    page_rate: float,
    page_seconds: float,
) -> None:
    """Run what ``backends`` asks for; failures become failed checks, never exceptions."""
    results.invitations = invitations
    requests = max(1, round(page_rate * page_seconds))
    for name in backends:
        backend: Backend = Postgres() if name == "postgres" else Sqlite()
        try:
            if isinstance(backend, Postgres):
                seeded = prepare(backend, invitations, requests, requests)
                delivery(results, check, backend, seeded, invitations)
                page_latency(results, check, backend, seeded, page_rate, page_seconds)
            else:
                seeded = prepare(backend, invitations, 0, 0)
                delivery(results, check, backend, seeded, invitations)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            import traceback

            traceback.print_exc()
            check(
                f"{name}: the survey benchmark ran to its end",
                False,
                f"{type(exc).__name__}: {exc}",
            )
        finally:
            backend.destroy()


# --- The report -----------------------------------------------------------------------------


def _per(cpu: float | None, count: int, scale: float = 1e3) -> str:
    if cpu is None or not count:
        return "-"
    return f"{cpu * scale / count:,.2f}"


def report(results: SurveyResults, out: TextIO = sys.stdout) -> None:
    if not results.deliveries and not results.pages:
        return

    def say(line: str = "") -> None:
        print(line, file=out)

    say()
    say(
        f"cxloop survey benchmark: {results.invitations:,} invitations; PostgreSQL: one Celery "
        "worker (solo pool) + beat, Redis broker; SQLite: cxloop dispatcher; aiosmtpd on loopback"
    )
    if results.deliveries:
        say()
        header = (
            f"{'backend':<9} {'delivery':<37} {'messages':>8} {'seconds':>8} {'msg/s':>7} "
            f"{'% SMTP ref':>10}  {'target':<15} {'worker ms':>9} {'db ms':>6} {'smtp ms':>7}"
            "  note"
        )
        say(header)
        say("-" * len(header))
        for d in results.deliveries:
            ref = results.reference_rate(d.backend)
            share = f"{100 * d.rate / ref:.1f}%" if ref else "-"
            if d.kind == "reference":
                target = "reference"
            elif d.kind == "target":
                status = "OK" if d.rate >= RATE_TARGET else "MISSED"
                target = f">= {RATE_TARGET:g}/s {status}"
            else:
                target = "information"
            say(
                f"{d.backend:<9} {d.path:<37} {d.invitations:>8,} {d.seconds:>8.2f} "
                f"{d.rate:>7,.0f} {share:>10}  {target:<15} {_per(d.worker_cpu, d.invitations):>9} "
                f"{_per(d.db_cpu, d.invitations):>6} {_per(d.sink_cpu, d.invitations):>7}"
                f"  {d.note}"
            )
        say()
        say(
            "worker/db/smtp ms: CPU time per message of the Celery worker (or the dispatcher, "
            "SQLite included), of the PostgreSQL backends and of the SMTP server."
        )
    if results.pages:
        say()
        header = (
            f"{'backend':<9} {'respondent page':<26} {'requests':>8} {'req/s':>6} "
            f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'x healthz':>9}"
            f"  {'target':<20} {'app ms/req':>10} {'db ms/req':>9} {'client ms/req':>13}"
        )
        say(header)
        say("-" * len(header))
        for p in results.pages:
            r = p.result
            p95 = r.percentile(95)
            ref = results.reference_p95(p.backend)
            ratio = f"{p95 / ref:.1f}x" if ref and p.kind != "reference" else "-"
            if p.kind == "reference":
                target = "reference"
            elif p.kind == "target":
                status = "OK" if p95 < PAGE_P95_TARGET_MS else "MISSED"
                target = f"p95 < {PAGE_P95_TARGET_MS:g} ms {status}"
            else:
                target = "information"
            done = len(r.latencies_ms)
            say(
                f"{p.backend:<9} {p.path:<26} {done:>8,} {r.rate:>6.1f} {r.percentile(50):>7.1f} "
                f"{p95:>7.1f} {r.percentile(99):>7.1f} {max(r.latencies_ms, default=0):>7.1f} "
                f"{ratio:>9}  {target:<20} {_per(p.app_cpu, done):>10} {_per(p.db_cpu, done):>9} "
                f"{_per(p.client_cpu, done):>13}"
            )
            if r.late_dispatch:
                say(f"{'':<9} ({r.late_dispatch} requests dispatched > 5 ms late by the client)")
        say()
        say(
            f"Open loop at {results.pages[0].rate:g} requests/s, {PAGE_THREADS} client threads, "
            f"a new connection per request, gunicorn {WORKERS} sync workers, DEBUG off; every "
            "page and one-click request is for a different invitation."
        )
    for note in results.notes:
        say(note)


# --- Where a send's time goes ---------------------------------------------------------------


def profile(backend_name: str, n: int, top: int) -> None:
    """cProfile of the trigger (``evaluate_new``) and of ``dispatch.send`` in-process, over
    batches of ``dispatch.BATCH`` invitations, sending to the SMTP sink."""
    import cProfile
    import pstats

    from .backends import STRIPPED_ENV

    backend: Backend = Postgres() if backend_name == "postgres" else Sqlite()
    try:
        prepare(backend, n + 1, 0, 0)
        with SmtpSink(backend.env()) as sink:
            for name in STRIPPED_ENV:
                os.environ.pop(name, None)
            os.environ.update(delivery_env(backend, sink, broker=False))
            import django

            django.setup()
            from cxloop.accounts.models import Workspace
            from cxloop.surveys import dispatch, rules
            from cxloop.surveys.models import Invitation

            workspace = Workspace.objects.get(slug=SLUG)
            ingest("visit", "C", 0, n + 1, [])
            started = time.perf_counter()
            made = rules.evaluate_new(workspace)
            print(f"evaluate_new: {made:,} decisions in {time.perf_counter() - started:.2f} s")
            ids = list(Invitation.objects.filter(status="scheduled").order_by("pk").values_list(
                "pk", flat=True))  # fmt: skip
            batches = [ids[i : i + dispatch.BATCH] for i in range(1, len(ids), dispatch.BATCH)]
            dispatch.send(ids[:1])  # warm: templates, translations, the SMTP connection class
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            for batch in batches:
                dispatch.send(batch)
            profiler.disable()
            seconds = time.perf_counter() - started
            sent = sink.stats()["messages"] - 1
            print(
                f"{backend.name}: dispatch.send of {sent:,} invitations in batches of "
                f"{dispatch.BATCH} in {seconds:.2f} s under the profiler ({sent / seconds:,.0f}/s)"
            )
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(r"cxloop|django|smtplib|email", top)
            stats.sort_stats("tottime").print_stats(top)
    finally:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()  # or PostgreSQL refuses to drop the database
        backend.destroy()


def profile_page(backend_name: str, n: int, top: int) -> None:
    """cProfile of ``GET /s/<token>`` through Django's full stack (test client, in-process),
    each request for a different invitation, and the SQL each one runs."""
    import cProfile
    import pstats

    from .backends import STRIPPED_ENV

    backend: Backend = Postgres() if backend_name == "postgres" else Sqlite()
    try:
        seeded = prepare(backend, 1, n + 1, 0)
        for name in STRIPPED_ENV:
            os.environ.pop(name, None)
        os.environ.update(backend.env() | {"SITE_URL": SITE_URL})
        import django

        django.setup()
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        client = Client(HTTP_HOST=HOST, HTTP_ACCEPT=BROWSER_HEADERS["Accept"])
        first, *tokens = seeded.page_tokens
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"/s/{first}")
        print(f"GET /s/<token>: HTTP {page.status_code}, {len(page.content):,} bytes, "
              f"{len(queries)} queries:")  # fmt: skip
        for q in queries.captured_queries:
            print(f"  {q['time']} s  {q['sql'][:300]}")
        profiler = cProfile.Profile()
        cpu, started = time.process_time(), time.perf_counter()
        profiler.enable()
        for token in tokens:
            client.get(f"/s/{token}")
        profiler.disable()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"{len(tokens):,} pages in {seconds:.2f} s under the profiler "
              f"({1000 * cpu / len(tokens):.2f} ms CPU each)")  # fmt: skip
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(r"cxloop|django", top)
        stats.sort_stats("tottime").print_stats(top)
    finally:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()
        backend.destroy()


# --- Subprocess entry point -----------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.surveys",
        description="profile: where dispatch.send's time goes; profile-page: where the "
        "respondent page's time goes (cProfile, in-process). seed, ingest: the benchmark's own "
        "subprocesses.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    prof = sub.add_parser("profile")
    prof.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    prof.add_argument("--invitations", type=int, default=2000)
    prof.add_argument("--top", type=int, default=30)
    prof_page = sub.add_parser("profile-page")
    prof_page.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    prof_page.add_argument("--pages", type=int, default=500)
    prof_page.add_argument("--top", type=int, default=30)
    seed = sub.add_parser("seed")
    seed.add_argument("--customers", type=int, required=True)
    seed.add_argument("--page", type=int, required=True)
    seed.add_argument("--click", type=int, required=True)
    seed.add_argument("--warm", type=int, required=True)
    load = sub.add_parser("ingest")
    load.add_argument("--prefix", required=True)
    load.add_argument("--customer", required=True, help="Customer code prefix: C or W.")
    load.add_argument("--first", type=int, default=0)
    load.add_argument("--count", type=int, required=True)
    load.add_argument("--watch", type=int, action="append", default=[])
    args = parser.parse_args()
    if args.command == "profile":
        profile(args.backend, args.invitations, args.top)
        return
    if args.command == "profile-page":
        profile_page(args.backend, args.pages, args.top)
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cxloop.settings")
    import django

    django.setup()
    if args.command == "seed":
        answer = seed_workspace(args.customers, args.page, args.click, args.warm)
    else:
        answer = ingest(args.prefix, args.customer, args.first, args.count, args.watch)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
