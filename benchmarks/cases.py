"""The closed-loop benchmark: from a detractor's answer to an open case, and the case pages with
100,000 open cases in the workspace.

Part of ``make bench`` (``--suite cases`` runs only this; see benchmarks/README.md). PostgreSQL
only (the production setup), with Redis as the Celery broker.

1. **Seed** (``python -m benchmarks.cases seed``, Django in a subprocess): an org chart (branches
   with managers, ten teams a branch, each with a supervisor who has a login, four employees a
   team), customers, an NPS survey on the default alert rule (detractors, 0-6), and N open
   cases (default 100,000), each with its response and its ``opened`` event, spread over the
   employees so that every supervisor, the benchmark's included, has an inbox of about 200;
   sent invitations with tokens for the answers of phase 2; database sessions for the
   benchmark's supervisor and a CX manager. Bulk inserts in batches, then ``VACUUM ANALYZE``.
2. **Response → case**: ONE Celery worker (solo pool, ``-Q default,delivery``), no ``celery
   beat`` (the heartbeat's sweep would open missed cases and hide a slow path), gunicorn with
   the broker configured. Detractors answer through the real respondent path, the one-click
   link ``GET /s/<token>?score=2``, open loop at a steady rate; the latency of each is the
   case's ``opened_at`` less the response's ``created_at`` (both written by cxloop, from the
   same clock). The reference, same run, same worker, same rate: the round trip of Celery's
   no-op task ``celery.accumulate`` (publish, run, result back through Redis).
3. **Pages**: the same gunicorn, open loop, logged in by a session cookie: ``GET /healthz``
   (the reference: the cheapest view, with the same session and membership lookups), the
   supervisor's inbox ``/cases/`` (their open cases by deadline, 50 a page), their teams' tab
   ``/cases/?tab=teams``, the CX manager's ``/cases/?tab=all`` (all 100,000), and
   ``/cases/<pk>`` for random cases of the supervisor. Then each page's SQL once through
   Django's test client (``CaptureQueriesContext``): the query count and time, and for a page
   that missed its target the ``EXPLAIN ANALYZE`` of its slowest query.

``python -m benchmarks.cases explain`` builds the same database and prints every page's
queries with ``EXPLAIN (ANALYZE, BUFFERS)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from . import inprocess, surveys
from .backends import Backend, Postgres
from .cpu import CpuMeter, process_tree
from .latency import BROWSER_HEADERS, LatencyResult, run_calls
from .server import BIN, HOST, ROOT, WORKERS, Gunicorn, Response

LATENCY_TARGET_MS = 2000.0  # response → open case, p95
PAGE_TARGET_MS = 200.0  # the inbox and case pages, p95
SLUG = "bench-cases"
SITE_URL = "https://cx.example.com"
BRANCHES = 50
TEAMS_PER_BRANCH = 10  # one supervisor each: 500 supervisors
AGENTS_PER_TEAM = 4
CUSTOMERS = 20_000
BATCH = 5_000
WARM = 4 * WORKERS  # warm-up answers (and requests per page kind before the load)
PAGE_THREADS = 8
REFERENCE_TASK = "celery.accumulate"  # a Celery built-in that returns its arguments
ABANDON_AFTER = 30.0  # seconds after a page's last due request before the rest are dropped
ABANDONED = -2  # the status of a request dropped so

Check = Callable[[str, bool, str], bool]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Loop:
    """Response → case latencies, or the no-op task's round trips."""

    path: str
    kind: str  # "reference" or "target"
    rate: float
    result: LatencyResult
    note: str = ""
    worker_cpu: float | None = None
    db_cpu: float | None = None


@dataclass
class CaseResults:
    cases: int = 0
    responses: int = 0
    loops: list[Loop] = field(default_factory=list)
    pages: list[surveys.Page] = field(default_factory=list)
    queries: dict[str, str] = field(default_factory=dict)  # page label → "N queries, x ms"
    notes: list[str] = field(default_factory=list)

    def reference_p95(self, kind: str) -> float | None:
        rows = self.loops if kind == "loop" else self.pages
        for row in rows:
            if row.kind == "reference":
                return row.result.percentile(95)
        return None


@dataclass
class Seeded:
    workspace_id: int
    open_cases: int
    supervisor_open: int
    supervisor_session: str
    manager_session: str
    session_cookie: str
    case_pks: list[int]
    tokens: list[str]
    warm_tokens: list[str]
    seconds: float


# --- Django side (subprocesses) -------------------------------------------------------------


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cxloop.settings")
    import django

    django.setup()


def seed(cases: int, invitations: int) -> dict[str, Any]:
    """In the subprocess: the organisation, the survey, ``cases`` open cases with their
    responses and events, ``invitations`` sent invitations, two logged-in sessions."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from cxloop.accounts.models import Membership, Role
    from cxloop.accounts.services import create_workspace
    from cxloop.cases.models import Case, CaseEvent, CaseSource, CaseStatus, EventKind
    from cxloop.core import clock
    from cxloop.customers.models import Customer
    from cxloop.organisation.models import (
        Branch,
        Channel,
        Employee,
        Journey,
        Region,
        Stage,
        Team,
        Touchpoint,
    )
    from cxloop.surveys.definition import default_definition
    from cxloop.surveys.models import (
        DeliveryChannel,
        Invitation,
        InvitationStatus,
        Response,
        ResponseSource,
    )
    from cxloop.surveys.services import save_survey

    started = time.perf_counter()
    rng = random.Random(42)
    User = get_user_model()
    workspace = create_workspace(SLUG, "Benchmark Retail", via="cli")
    password = make_password("bench-password-1")  # hashed once, shared: hashing is slow
    with transaction.atomic():
        region = Region.objects.create(workspace=workspace, code="R1", name="Centre")
        branches = Branch.objects.bulk_create(
            Branch(workspace=workspace, region=region, code=f"B{b:02d}", name=f"Store No. {b}")
            for b in range(BRANCHES)
        )
        managers = Employee.objects.bulk_create(
            Employee(workspace=workspace, code=f"M{b:02d}", name=f"Manager {b}", branch=branch,
                     title="Branch manager", email=f"m{b:02d}@cx.example.com")
            for b, branch in enumerate(branches)
        )  # fmt: skip
        for branch, manager in zip(branches, managers, strict=True):
            branch.manager = manager
        Branch.objects.bulk_update(branches, ["manager"])
        teams = Team.objects.bulk_create(
            Team(workspace=workspace, code=f"T{b:02d}{t}", name=f"Team {t}", branch=branch)
            for b, branch in enumerate(branches)
            for t in range(TEAMS_PER_BRANCH)
        )
        users = User.objects.bulk_create(
            User(username=f"sup{i:03d}", email=f"sup{i:03d}@cx.example.com", password=password)
            for i in range(len(teams))
        )
        cx_manager = User.objects.create(
            username="cxmanager", email="cx@cx.example.com", password=password
        )
        Membership.objects.bulk_create(
            [Membership(user=u, workspace=workspace, role=Role.SUPERVISOR) for u in users]
            + [Membership(user=cx_manager, workspace=workspace, role=Role.CX_MANAGER)]
        )
        supervisors = Employee.objects.bulk_create(
            Employee(workspace=workspace, code=f"S{i:03d}", name=f"Supervisor {i}",
                     branch=team.branch, team=team, supervisor=managers[i // TEAMS_PER_BRANCH],
                     user=users[i], title="Supervisor", email=f"sup{i:03d}@cx.example.com")
            for i, team in enumerate(teams)
        )  # fmt: skip
        agents = Employee.objects.bulk_create(
            Employee(workspace=workspace, code=f"E{i:03d}{a}", name=f"Employee {i}-{a}",
                     branch=team.branch, team=team, supervisor=supervisors[i])
            for i, team in enumerate(teams)
            for a in range(AGENTS_PER_TEAM)
        )  # fmt: skip
        store = Channel.objects.create(workspace=workspace, code="store", name="Store")
        journey = Journey.objects.create(workspace=workspace, code="buy", name="Buy")
        stage = Stage.objects.create(workspace=workspace, journey=journey, code="pay", name="Pay")
        touchpoint = Touchpoint.objects.create(
            workspace=workspace, stage=stage, channel=store, code="store-visit", name="Store visit"
        )
        customers = Customer.objects.bulk_create(
            (
                Customer(
                    workspace=workspace,
                    external_id=f"C{i:06d}",
                    name=f"Customer {i}",
                    email=f"c{i:06d}@example.com",
                    phone=f"+3736{i:07d}",
                    language=("ro", "ru", "en")[i % 3],
                    consent={"email": True},
                )
                for i in range(CUSTOMERS + invitations)
            ),
            batch_size=BATCH,
        )
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
    comments = (
        "Waited forty minutes at the till.",
        "The card machine did not work and nobody helped.",
        "Rude answer when I asked about the delivery.",
        "",
    )
    statuses = [CaseStatus.OPEN] * 4 + [CaseStatus.IN_PROGRESS]
    # The open cases: about 200 per supervisor. Every 20th response names no employee and
    # goes to the branch manager, as routing does.
    for start in range(0, cases, BATCH):
        count = min(BATCH, cases - start)
        with transaction.atomic():
            plan = []
            for i in range(start, start + count):
                agent = agents[i % len(agents)]
                employee = None if i % 20 == 19 else agent
                branch = branches[(i % len(agents)) // (AGENTS_PER_TEAM * TEAMS_PER_BRANCH)]
                answered = now - dt.timedelta(seconds=rng.randrange(30, 6 * 86400))
                plan.append((i, employee, branch, answered, rng.randrange(0, 7)))
            responses = Response.objects.bulk_create(
                Response(
                    workspace=workspace,
                    external_id=f"seed-{i:07d}",
                    survey=survey,
                    customer=customers[i % CUSTOMERS],
                    score=score,
                    comment=comments[i % len(comments)],
                    answers={},
                    language="en",
                    answered_at=answered,
                    source=ResponseSource.WEB,
                    branch=branch,
                    employee=employee,
                    channel=store,
                    touchpoint=touchpoint,
                )
                for i, employee, branch, answered, score in plan
            )
            deadlines = [now + dt.timedelta(minutes=rng.randrange(-1440, 2880)) for _ in plan]
            opened = Case.objects.bulk_create(
                Case(
                    workspace=workspace,
                    source=CaseSource.RESPONSE,
                    response=response,
                    survey=survey,
                    customer_id=response.customer_id,
                    branch=branch,
                    employee=employee,
                    channel=store,
                    touchpoint=touchpoint,
                    matched=[f"detractor: score {score}"],
                    status=statuses[i % len(statuses)],
                    assignee=employee.supervisor if employee is not None else branch.manager,
                    opened_at=answered + dt.timedelta(seconds=1),
                    # From a day overdue to two days ahead (without the heartbeat running,
                    # nothing escalates them in the meantime).
                    due_at=due,
                    warn_at=due - dt.timedelta(hours=1),
                )
                for (i, employee, branch, answered, score), response, due in zip(
                    plan, responses, deadlines, strict=True
                )
            )
            CaseEvent.objects.bulk_create(
                CaseEvent(
                    workspace=workspace,
                    case=case,
                    kind=EventKind.OPENED,
                    at=case.opened_at,
                    to_assignee_id=case.assignee_id,
                    note="; ".join(case.matched),
                )
                for case in opened
            )
            CaseEvent.objects.bulk_create(
                CaseEvent(
                    workspace=workspace,
                    case=case,
                    kind=EventKind.ATTEMPT,
                    at=case.opened_at + dt.timedelta(hours=1),
                    result="no_answer",
                    via="web",
                )
                for case in opened
                if case.status == CaseStatus.IN_PROGRESS
            )
    # The answers of phase 2: sent invitations, spread over the employees like the cases.
    live = customers[CUSTOMERS:]
    sent = Invitation.objects.bulk_create(
        (
            Invitation(
                workspace=workspace,
                survey=survey,
                customer=customer,
                delivery_channel=DeliveryChannel.EMAIL,
                language=customer.language,
                branch=agents[n % len(agents)].branch,
                employee=agents[n % len(agents)],
                channel=store,
                touchpoint=touchpoint,
                status=InvitationStatus.SENT,
                scheduled_for=now,
                sent_at=now,
                expires_at=now + dt.timedelta(days=14),
            )
            for n, customer in enumerate(live)
        ),
        batch_size=BATCH,
    )
    tokens = [inv.token for inv in sent]
    me = supervisors[0]
    mine = list(
        Case.objects.filter(assignee=me, status__in=["open", "in_progress"]).values_list(
            "pk", flat=True
        )
    )
    return {
        "workspace_id": workspace.pk,
        "open_cases": cases,
        "supervisor_open": len(mine),
        "supervisor_session": _session(users[0], workspace.pk),
        "manager_session": _session(cx_manager, workspace.pk),
        "session_cookie": _cookie_name(),
        "case_pks": mine,
        "tokens": tokens[WARM:],
        "warm_tokens": tokens[:WARM],
        "seconds": time.perf_counter() - started,
    }


def _cookie_name() -> str:
    from django.conf import settings

    return str(settings.SESSION_COOKIE_NAME)


def _session(user: Any, workspace_id: int) -> str:
    """A database session logged in as ``user``, as ``django.contrib.auth.login`` makes it."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from cxloop.accounts.middleware import SESSION_KEY as WORKSPACE_KEY

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session[WORKSPACE_KEY] = workspace_id
    session.create()
    return str(session.session_key)


def capture(pages: list[tuple[str, str, str]], explain: str) -> dict[str, Any]:
    """In the subprocess: each page once through the test client (after one warm-up request)
    with its queries; ``pages`` is (label, path, session key). ``explain``: "none", "slowest"
    (EXPLAIN ANALYZE of the slowest query of each page) or "all"."""
    from django.conf import settings
    from django.test import Client

    out: dict[str, Any] = {}
    for label, path, session in pages:
        client = Client(HTTP_HOST=HOST, HTTP_ACCEPT=BROWSER_HEADERS["Accept"])
        client.cookies[settings.SESSION_COOKIE_NAME] = session
        out[label] = inprocess.measure(client, path, explain)
    return out


def python(backend: Backend, *args: str, timeout: float = 900) -> dict[str, Any]:
    """Run ``python -m benchmarks.cases ARGS``; the JSON object it printed last."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cases", *args],
        cwd=ROOT,
        env=backend.env() | {"SITE_URL": SITE_URL},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise surveys.SetupError(
            f"benchmarks.cases {args[0]} failed ({proc.returncode}):\n{proc.stderr}"
        )
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


# --- The benchmark's side -------------------------------------------------------------------


def prepare(backend: Postgres, cases: int, invitations: int) -> Seeded:
    started = time.perf_counter()
    backend.create()
    surveys.cxloop(backend, "migrate", "--noinput")
    migrated = time.perf_counter()
    info = python(backend, "seed", "--cases", str(cases), "--invitations", str(invitations))
    backend.analyze()
    seeded = Seeded(**info)
    log(
        f"postgres: migrated in {migrated - started:.1f} s; seeded {cases:,} open cases "
        f"({seeded.supervisor_open} for the benchmark's supervisor) in {seeded.seconds:.1f} s; "
        f"{time.perf_counter() - started:.1f} s with VACUUM ANALYZE"
    )
    return seeded


def session_get(port: int, path: str, cookie: str, timeout: float = 30) -> Response:
    """``GET path`` with a browser's headers and a session cookie, on its own connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=BROWSER_HEADERS | {"Cookie": cookie})
        resp = conn.getresponse()
        return Response(resp.status, resp.read())
    finally:
        conn.close()


def open_count(backend: Postgres, workspace_id: int) -> int:
    with backend.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM cases_case WHERE workspace_id = %s "
            "AND status IN ('open', 'in_progress')",
            (workspace_id,),
        ).fetchone()
        return int(row[0]) if row else 0


def case_times(backend: Postgres, tokens: list[str]) -> dict[str, tuple[float, float | None]]:
    """token → (response created_at, case opened_at or None), as epoch seconds."""
    with backend.connect() as conn:
        rows = conn.execute(
            "SELECT i.token, extract(epoch FROM r.created_at), extract(epoch FROM c.opened_at) "
            "FROM surveys_invitation i JOIN surveys_response r ON r.invitation_id = i.id "
            "LEFT JOIN cases_case c ON c.response_id = r.id WHERE i.token = ANY(%s)",
            (tokens,),
        ).fetchall()
    return {
        str(token): (float(made), float(opened) if opened is not None else None)
        for token, made, opened in rows
    }


class CaseWatcher:
    """Polls the database every 20 ms for new cases; when each was first seen (epoch)."""

    def __init__(self, backend: Postgres, interval: float = 0.02) -> None:
        self.backend = backend
        self.interval = interval
        self.seen: dict[int, float] = {}  # response id → first seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.last_id = 0

    def __enter__(self) -> CaseWatcher:
        with self.backend.connect() as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM cases_case").fetchone()
            self.last_id = int(row[0]) if row else 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _poll(self) -> None:
        with self.backend.connect() as conn:
            conn.autocommit = True
            while not self._stop.wait(self.interval):
                rows = conn.execute(
                    "SELECT id, response_id FROM cases_case WHERE id > %s", (self.last_id,)
                ).fetchall()
                now = time.time()
                for pk, response_id in rows:
                    self.last_id = max(self.last_id, int(pk))
                    if response_id is not None:
                        self.seen.setdefault(int(response_id), now)

    def count(self) -> int:
        return len(self.seen)


def response_ids(backend: Postgres, tokens: list[str]) -> dict[str, tuple[int, float]]:
    with backend.connect() as conn:
        rows = conn.execute(
            "SELECT i.token, r.id, extract(epoch FROM r.created_at) FROM surveys_invitation i "
            "JOIN surveys_response r ON r.invitation_id = i.id WHERE i.token = ANY(%s)",
            (tokens,),
        ).fetchall()
    return {str(t): (int(pk), float(made)) for t, pk, made in rows}


def wait_cases(
    watcher: CaseWatcher, want: int, worker: surveys.Service, stall: float = 30.0
) -> int:
    """Wait until ``want`` new cases were seen, or none came for ``stall`` seconds."""
    seen, progress_at = watcher.count(), time.monotonic()
    while seen < want:
        if not worker.alive():
            raise surveys.SetupError(f"the Celery worker exited:\n{worker.tail()}")
        if time.monotonic() - progress_at > stall:
            break
        time.sleep(0.05)
        if watcher.count() != seen:
            seen, progress_at = watcher.count(), time.monotonic()
    return seen


def celery_reference(rate: float, count: int) -> LatencyResult:
    """Round trips of Celery's built-in no-op task through the same broker and worker: from
    when each was due to its result back in this process (Redis result backend)."""
    from celery import Celery

    app = Celery("cxloop-bench", broker=surveys.redis_url(), backend=surveys.redis_url())
    app.conf.task_default_queue = "default"
    try:
        for i in range(3):  # warm: connections, the result subscription
            app.send_task(REFERENCE_TASK, args=(i,), kwargs={"index": 0}).get(timeout=30)

        def call(i: int) -> Response:
            result = app.send_task(REFERENCE_TASK, args=(i,), kwargs={"index": 0})
            value = result.get(timeout=30)
            result.forget()
            return Response(200 if value == i else 500, repr(value).encode())

        # One client thread: the result backend's subscription is not thread-safe; at this
        # rate a round trip of a few milliseconds leaves the thread idle most of the time.
        return run_calls(call, rate=rate, seconds=count / rate, threads=1, expect=200)
    finally:
        app.close()


def closed_loop(
    results: CaseResults,
    check: Check,
    backend: Postgres,
    seeded: Seeded,
    server: Gunicorn,
    worker: surveys.Service,
    rate: float,
) -> None:
    """Phase 2: detractors answer through the one-click link; their cases open on the worker."""
    port = server.port
    # Warm-up (and proof that the path works): a few answers all the way to their case.
    with CaseWatcher(backend) as watcher:
        warm = [session_get(port, f"/s/{t}?score=2", "") for t in seeded.warm_tokens]
        check(
            "postgres: the one-click answers of the warm-up answered 303",
            all(r.status == 303 for r in warm),
            f"statuses {[r.status for r in warm]}: {warm[0].body[:300]!r}",
        )
        got = wait_cases(watcher, len(warm), worker, stall=60)
    if not check(
        "postgres: the warm-up answers opened their cases on the worker",
        got == len(warm),
        f"{got} of {len(warm)} cases opened; the worker said:\n{worker.tail()}",
    ):
        return

    count = min(results.responses, len(seeded.tokens))
    log(f"postgres: Celery no-op round trips ({REFERENCE_TASK}), {count} at {rate:g}/s")
    reference = celery_reference(rate, count)
    check(
        "postgres: every no-op task came back",
        reference.statuses.get(200, 0) == reference.requests,
        f"statuses {reference.statuses}; {reference.errors[:2]}",
    )
    results.loops.append(
        Loop(
            "Celery no-op round trip (reference)",
            "reference",
            rate,
            reference,
            "publish → worker → result back, 1 client",
        )
    )

    tokens = seeded.tokens[:count]
    log(f"postgres: {count} detractors answer GET /s/<token>?score=2 at {rate:g}/s")
    worker_before = surveys.tree_cpu(worker.pid)
    db = CpuMeter(*surveys.db_backends(backend.dbname))
    with CaseWatcher(backend) as watcher, db:
        answers = run_calls(
            lambda i: session_get(port, f"/s/{tokens[i]}?score=2", ""),
            rate=rate,
            seconds=count / rate,
            threads=PAGE_THREADS,
            expect=303,
        )
        got = wait_cases(watcher, count, worker)
        worker_cpu = surveys.tree_cpu(worker.pid) - worker_before
    check(
        "postgres: every one-click answer answered 303",
        answers.statuses.get(303, 0) == count,
        f"statuses {answers.statuses}; {answers.errors[:2]}",
    )
    times = case_times(backend, tokens)
    opened = {t: (made, at) for t, (made, at) in times.items() if at is not None}
    check(
        "postgres: every detractor's answer opened exactly one case",
        len(times) == count and len(opened) == count and got == count,
        f"{len(times)} responses recorded, {len(opened)} cases opened, {count} answers sent",
    )
    with backend.connect() as conn:
        row = conn.execute(
            "SELECT count(*), count(c.assignee_id) FROM cases_case c "
            "JOIN surveys_response r ON r.id = c.response_id "
            "JOIN surveys_invitation i ON i.id = r.invitation_id WHERE i.token = ANY(%s)",
            (tokens,),
        ).fetchone()
    total, assigned = (int(row[0]), int(row[1])) if row else (0, 0)
    check(
        "postgres: every new case went to the employee's supervisor",
        total == assigned == len(opened),
        f"{assigned} of {total} cases assigned",
    )
    if not opened:
        return
    latencies = [1000 * (at - made) for made, at in opened.values()]
    ids = response_ids(backend, tokens)
    seen = [1000 * (watcher.seen[pk] - made) for pk, made in ids.values() if pk in watcher.seen]
    result = LatencyResult(
        requests=count,
        seconds=answers.seconds,
        latencies_ms=latencies,
        statuses=answers.statuses,
    )
    page_p95 = answers.percentile(95)
    polled = LatencyResult(requests=len(seen), seconds=1.0, latencies_ms=seen)
    results.loops.append(
        Loop(
            "response → open case, 1 Celery worker",
            "target",
            rate,
            result,
            f"seen committed by a 20 ms poll: p95 {polled.percentile(95):,.0f} ms; "
            f"the one-click answer itself: p95 {page_p95:,.0f} ms",
            worker_cpu,
            db.seconds,
        )
    )


def _page_call(
    port: int, path_for: Callable[[int], str], cookie: str, abandon_at: float
) -> Callable[[int], Response]:
    def call(i: int) -> Response:
        if time.perf_counter() > abandon_at:
            return Response(ABANDONED, b"not sent: the server had fallen too far behind")
        return session_get(port, path_for(i), cookie)

    return call


def page_load(
    results: CaseResults,
    check: Check,
    backend: Postgres,
    seeded: Seeded,
    server: Gunicorn,
    rate: float,
    seconds: float,
) -> list[tuple[str, str, str]]:
    """Phase 3: the pages under open-loop load; returns (label, path, session) of each."""
    port = server.port
    supervisor = f"{seeded.session_cookie}={seeded.supervisor_session}"
    manager = f"{seeded.session_cookie}={seeded.manager_session}"
    rng = random.Random(7)
    pks = seeded.case_pks or [0]
    picks = [rng.choice(pks) for _ in range(max(1, round(rate * seconds)) + WARM)]
    pages: list[tuple[str, str, Callable[[int], str], str, str]] = [
        ("GET /healthz (reference)", "reference", lambda i: "/healthz", supervisor, "/healthz"),
        (f"GET /cases/ (inbox), {seeded.open_cases // 1000}k open", "target",
         lambda i: "/cases/", supervisor, "/cases/"),
        ("GET /cases/?tab=teams (supervisor)", "target",
         lambda i: "/cases/?tab=teams", supervisor, "/cases/?tab=teams"),
        ("GET /cases/?tab=all (CX manager)", "target",
         lambda i: "/cases/?tab=all", manager, "/cases/?tab=all"),
        ("GET /cases/<pk>", "target", lambda i: f"/cases/{picks[i]}", supervisor,
         f"/cases/{picks[0]}"),
    ]  # fmt: skip
    # Warm every worker up on each page, and look at each once.
    for label, _kind, path_for, cookie, _path in pages:
        answers = [session_get(port, path_for(i), cookie) for i in range(WARM)]
        last = answers[-1]
        html = last.body.decode(errors="replace")
        links = len(set(re.findall(r'href="/cases/(\d+)"', html)))
        listing = label.startswith("GET /cases/") and "<pk>" not in label
        check(
            f"postgres: {label} shows the page" + (" with 50 cases" if listing else ""),
            last.status == 200 and (links >= 50 or not listing),
            f"HTTP {last.status}, {links} links to cases: {html[:300]!r}",
        )
    for label, kind, path_for, cookie, _path in pages:
        log(f"postgres: {label} at {rate:g}/s for {seconds:g} s")
        app = CpuMeter(process_tree(server.pid))
        db = CpuMeter(*surveys.db_backends(backend.dbname))
        client = time.process_time()
        # A page far slower than the rate would keep the suite busy for minutes: requests
        # still waiting ABANDON_AFTER s after the last one was due are not sent (their latency
        # counts up to then, a lower bound) and the page fails its check.
        call = _page_call(port, path_for, cookie, time.perf_counter() + seconds + ABANDON_AFTER)
        with app, db:
            result = run_calls(call, rate=rate, seconds=seconds, threads=PAGE_THREADS, expect=200)
        client = time.process_time() - client
        abandoned = result.statuses.get(ABANDONED, 0)
        if abandoned:
            results.notes.append(
                f"{label}: {abandoned:,} of {result.requests:,} requests not sent, the server "
                f"being more than {ABANDON_AFTER:g} s behind: its percentiles are lower bounds."
            )
        check(
            f"postgres: {label} answered 200 every time",
            result.statuses.get(200, 0) == result.requests,
            f"statuses {result.statuses}; {result.errors[:2]}",
        )
        results.pages.append(
            surveys.Page("postgres", label, rate, result, kind, app.seconds, db.seconds, client)
        )
    sessions = {supervisor: seeded.supervisor_session, manager: seeded.manager_session}
    return [(label, path, sessions[cookie]) for label, _k, _p, cookie, path in pages]


def page_queries(
    results: CaseResults, backend: Postgres, pages: list[tuple[str, str, str]]
) -> None:
    """Each page's SQL once; the plan of the slowest query of a page that missed its target."""
    missed = {
        p.path
        for p in results.pages
        if p.kind == "target" and not p.result.percentile(95) < PAGE_TARGET_MS
    }
    wanted = [page for page in pages if not page[1].startswith("/healthz")]
    info = python(
        backend, "queries", "--explain", "slowest" if missed else "none",
        "--pages", json.dumps(wanted),
    )  # fmt: skip
    inprocess.report(
        info, missed, results.queries, results.notes, "the view, its forms and its template"
    )


def worker_env(backend: Backend) -> dict[str, str]:
    return backend.env() | {
        "CELERY_BROKER_URL": surveys.redis_url(),
        "SITE_URL": SITE_URL,
        "STATIC_ROOT": str(backend.tmp / "static"),
    }


def bench(
    results: CaseResults,
    check: Check,
    *,
    cases: int,
    responses: int,
    rate: float,
    page_rate: float,
    page_seconds: float,
) -> None:
    """The whole suite on a throw-away PostgreSQL database; failures become failed checks."""
    results.cases, results.responses = cases, responses
    backend = Postgres()
    try:
        seeded = prepare(backend, cases, responses + WARM)
        check(
            f"postgres: {cases:,} open cases seeded",
            open_count(backend, seeded.workspace_id) == cases,
            f"found {open_count(backend, seeded.workspace_id):,}",
        )
        surveys.flush_redis()
        env = worker_env(backend)
        tmp = backend.tmp
        worker = surveys.Service(
            "celery worker",
            [str(BIN / "celery"), "-A", "cxloop", "worker", "-Q", "default,delivery",
             "--pool", "solo", "--concurrency", "1", "--without-gossip", "--without-mingle",
             "-l", "warning", "-n", f"benchcases{os.getpid()}@%h"],
            # The result backend serves only the reference task (cases.open ignores results).
            env | {"CELERY_RESULT_BACKEND": surveys.redis_url()},
            tmp / "worker.log",
        )  # fmt: skip
        with surveys.services([worker]), Gunicorn(env, tmp / "gunicorn.log") as server:
            log("postgres: Celery worker (solo pool, no beat) and gunicorn started")
            closed_loop(results, check, backend, seeded, server, worker, rate)
            pages = page_load(results, check, backend, seeded, server, page_rate, page_seconds)
        page_queries(results, backend, pages)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        import traceback

        traceback.print_exc()
        check("postgres: the closed-loop benchmark ran to its end", False, f"{exc}")
    finally:
        try:
            surveys.flush_redis()  # leave nothing behind in the broker's database
        except Exception as exc:  # cleaning up: Redis itself may be what failed
            log(f"could not flush Redis: {exc}")
        backend.destroy()


# --- The report -----------------------------------------------------------------------------


def _per(cpu: float | None, count: int) -> str:
    if cpu is None or not count:
        return "-"
    return f"{cpu * 1e3 / count:,.2f}"


def report(results: CaseResults, out: TextIO = sys.stdout) -> None:
    if not results.loops and not results.pages:
        return

    def say(line: str = "") -> None:
        print(line, file=out)

    say()
    say(
        f"cxloop closed-loop benchmark: {results.cases:,} open cases in the workspace; one Celery "
        "worker (solo pool, no beat), Redis broker; gunicorn "
        f"{WORKERS} sync workers, DEBUG off"
    )
    if results.loops:
        say()
        header = (
            f"{'backend':<9} {'closed loop':<38} {'count':>6} {'/s':>5} {'p50 ms':>7} "
            f"{'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'x ref':>6}  {'target':<16} "
            f"{'worker ms':>9} {'db ms':>6}  note"
        )
        say(header)
        say("-" * len(header))
        ref = results.reference_p95("loop")
        for loop in results.loops:
            r = loop.result
            p95 = r.percentile(95)
            ratio = f"{p95 / ref:.1f}x" if ref and loop.kind != "reference" else "-"
            if loop.kind == "reference":
                target = "reference"
            else:
                status = "OK" if p95 < LATENCY_TARGET_MS else "MISSED"
                target = f"p95 < {LATENCY_TARGET_MS / 1000:g} s {status}"
            done = len(r.latencies_ms)
            say(
                f"{'postgres':<9} {loop.path:<38} {done:>6,} {loop.rate:>5g} "
                f"{r.percentile(50):>7.1f} {p95:>7.1f} {r.percentile(99):>7.1f} "
                f"{max(r.latencies_ms, default=0):>7.1f} {ratio:>6}  {target:<16} "
                f"{_per(loop.worker_cpu, done):>9} {_per(loop.db_cpu, done):>6}  {loop.note}"
            )
        say()
        say(
            "Response → case: the case's opened_at less the response's created_at (both from "
            "cxloop's clock); worker/db ms: CPU per case of the Celery worker and of all the "
            "PostgreSQL backends (the one-click answers' included)."
        )
    if results.pages:
        say()
        header = (
            f"{'backend':<9} {'case pages':<34} {'requests':>8} {'req/s':>6} "
            f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'x healthz':>9}"
            f"  {'target':<21} {'app ms/req':>10} {'db ms/req':>9}  queries"
        )
        say(header)
        say("-" * len(header))
        ref = results.reference_p95("page")
        for p in results.pages:
            r = p.result
            p95 = r.percentile(95)
            ratio = f"{p95 / ref:.1f}x" if ref and p.kind != "reference" else "-"
            if p.kind == "reference":
                target = "reference"
            else:
                status = "OK" if p95 < PAGE_TARGET_MS else "MISSED"
                target = f"p95 < {PAGE_TARGET_MS:g} ms {status}"
            done = len(r.latencies_ms)
            say(
                f"{p.backend:<9} {p.path:<34} {done:>8,} {r.rate:>6.1f} {r.percentile(50):>7.1f} "
                f"{p95:>7.1f} {r.percentile(99):>7.1f} {max(r.latencies_ms, default=0):>7.1f} "
                f"{ratio:>9}  {target:<21} {_per(p.app_cpu, done):>10} "
                f"{_per(p.db_cpu, done):>9}  {results.queries.get(p.path, '')}"
            )
            if r.late_dispatch:
                say(f"{'':<9} ({r.late_dispatch} requests dispatched > 5 ms late by the client)")
        say()
        say(
            f"Open loop at {results.pages[0].rate:g} requests/s, {PAGE_THREADS} client threads, "
            "a new connection per request, logged in by a session cookie (the supervisor's; the "
            "CX manager's for tab=all); /cases/<pk>: random open cases of the supervisor."
        )
    for note in results.notes:
        say(note)


# --- Subprocess entry point -----------------------------------------------------------------


def explain(cases: int) -> None:
    """Build the database, then print each page's queries with their plans."""
    from .backends import STRIPPED_ENV

    backend = Postgres()
    Backend.pycache = None
    try:
        seeded = prepare(backend, cases, 1)
        for name in STRIPPED_ENV:
            os.environ.pop(name, None)
        os.environ.update(backend.env() | {"SITE_URL": SITE_URL})
        _django()
        sup, mgr = seeded.supervisor_session, seeded.manager_session
        pick = seeded.case_pks[0] if seeded.case_pks else 0
        pages = [
            ("GET /cases/", "/cases/", sup),
            ("GET /cases/?tab=teams", "/cases/?tab=teams", sup),
            ("GET /cases/?tab=all", "/cases/?tab=all", mgr),
            ("GET /cases/<pk>", f"/cases/{pick}", sup),
        ]
        for label, row in capture(pages, "all").items():
            print(f"\n=== {label}: HTTP {row['status']}, {row['ms']:.1f} ms, "
                  f"{row['queries']} queries, {row['db_ms']:.1f} ms of SQL")  # fmt: skip
            for sql, plan in row["plans"]:
                print(f"\n{sql}\n{plan}")
    finally:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()
        backend.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cases",
        description="explain: every query of the case pages with its plan, on a throw-away "
        "database seeded as the benchmark does. seed, queries: the benchmark's own subprocesses.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plans = sub.add_parser("explain")
    plans.add_argument("--cases", type=int, default=100_000)
    seeder = sub.add_parser("seed")
    seeder.add_argument("--cases", type=int, required=True)
    seeder.add_argument("--invitations", type=int, required=True)
    queries = sub.add_parser("queries")
    queries.add_argument("--pages", required=True, help="JSON: [[label, path, session], …]")
    queries.add_argument("--explain", choices=["none", "slowest", "all"], default="none")
    args = parser.parse_args()
    if args.command == "explain":
        explain(args.cases)
        return
    _django()
    if args.command == "seed":
        answer = seed(args.cases, args.invitations)
    else:
        answer = capture([tuple(p) for p in json.loads(args.pages)], args.explain)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
