"""The analytics benchmark: NPS by branch and weekday over 10,000,000 responses, through cxloop's
API and dashboards and, in the same run, with DuckDB over a Parquet export of the same raw
responses.

``make bench BENCH_ARGS="--suite analytics"`` (not part of ``all``; see benchmarks/README.md).
PostgreSQL only.

1. **Seed** (``python -m benchmarks.analytics seed``, Django in a subprocess, through the
   services): a workspace in Europe/Chisinau, 30 branches ``B01`` … ``B30`` with 10 employees
   each, products, channels, touchpoints, an NPS survey (``save_survey``, the default
   definition), an API key with the ``read`` scope and a CX manager's session. Then, in SQL:
   the customers, and N responses (default 10,000,000) by ``INSERT … SELECT … FROM
   generate_series`` in two sessions, loaded as a bulk load is (plain indexes dropped and
   rebuilt, per-row foreign-key triggers off as ``cxloop demo`` does as a superuser, then one
   set-based check of every reference), spread over the last 12 whole months with branch,
   weekday and hour effects; then ``VACUUM ANALYZE``.
2. **Rollups**: ``cxloop analytics_rebuild --workspace SLUG`` (the SQL load bypasses the
   signals that keep them).
3. **Parquet**: the raw responses, ``COPY … TO STDOUT`` (CSV) into a temporary file, then
   DuckDB ``COPY … TO 'responses.parquet'``. Each row carries its local time as PostgreSQL
   computes it: DuckDB's ICU has time-zone rules of its own (``tz_disagreement``).
4. **DuckDB** (the reference): each question over the Parquet file, timed over 20 runs.
5. **API and dashboards**: gunicorn (2 sync workers), open loop, ``GET /healthz`` (the
   reference), ``GET /api/v1/analytics/nps`` grouped by branch and weekday, branch, weekday and
   hour, and month, and the dashboard ``/analytics/`` as the CX manager.
6. **Equal**: every group's counts and NPS from the API must equal DuckDB's.
7. **Pain map and key drivers**: their pages and API endpoints (90 days) are among the timed
   requests; in-process (``python -m benchmarks.analytics cells``), both read from the reason
   cells and from the raw answers (``cells=False``), best of three, and checked equal.

``python -m benchmarks.analytics explain [--responses N]`` builds the same database and prints
the queries of each API question and dashboard page with their ``EXPLAIN (ANALYZE, BUFFERS)``
plans.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from . import inprocess, surveys
from .backends import Backend, Postgres
from .cpu import CpuMeter, process_tree
from .latency import BROWSER_HEADERS, LatencyResult, run_calls
from .server import BIN, HOST, ROOT, WORKERS, Gunicorn, Response

API_TARGET_MS = 300.0  # p95 of every question of the NPS API and every dashboard page
SLUG = "bench-analytics"
TIME_ZONE = "Europe/Chisinau"
SURVEY = "nps"
BRANCHES = 30
EMPLOYEES_PER_BRANCH = 10
PRODUCTS = 20
CHANNELS = ("store", "call", "web", "app")
TOUCHPOINTS = (
    ("store-visit", "store"),
    ("store-purchase", "store"),
    ("hotline", "call"),
    ("web-order", "web"),
    ("web-chat", "web"),
    ("app-payment", "app"),
)
CUSTOMERS = 200_000
SEGMENTS = ("mass", "mass", "mass", "premium", "youth", "business")
MONTHS = 12  # the responses cover the last 12 whole months (workspace time)
DUCK_RUNS = 20  # timed runs of each DuckDB query (after one warm-up)
WARM = 2 * WORKERS  # warm-up requests per question before the load
API_THREADS = 8
ABANDON_AFTER = 30.0  # seconds after the last due request before the rest are dropped
ABANDONED = -2  # the status of a request dropped so
# Branch effects on the promoter share (the detractor share moves the other way, by half):
# four clearly below average, three above, the rest close to it.
BRANCH_EFFECT = [
    -0.14 if b in (4, 11, 19, 27) else 0.07 if b in (2, 15, 23) else ((b * 7) % 11 - 5) / 250
    for b in range(1, BRANCHES + 1)
]
WEEKDAY_EFFECT = [-0.03, 0.0, 0.01, 0.01, -0.01, 0.03, 0.04]  # Monday … Sunday
# Initiatives (name, branch codes; none: everywhere), every 55 days from the window's 31st day:
# the initiatives page computes their before/after, the dashboard marks them on its trend.
INITIATIVES = (
    ("New queue system", ("B04", "B11")),
    ("Staff training", ()),
    ("Card terminals replaced", ("B19", "B27")),
    ("Longer opening hours", ()),
    ("Price list simplified", ()),
    ("Self-service kiosks", ("B02", "B15", "B23")),
)

Check = Callable[[str, bool, str], bool]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Question:
    """One question of the API and the same one in DuckDB."""

    label: str
    group_by: str
    keys: tuple[tuple[str, str], ...]  # (API key name, DuckDB expression over r / local)


QUESTIONS = (
    Question(
        "branch × weekday",  # noqa: RUF001
        "branch,weekday",
        (("branch", "branch"), ("weekday", "isodow(local)")),
    ),
    Question("branch", "branch", (("branch", "branch"),)),
    Question(
        "weekday × hour",  # noqa: RUF001
        "weekday,hour",
        (("weekday", "isodow(local)"), ("hour", "hour(local)")),
    ),
    # A date, formatted as the API's "YYYY-MM" in Python (strftime on every row would cost DuckDB
    # half its time).
    Question("month", "month", (("month", "date_trunc('month', local)"),)),
)


@dataclass
class Step:
    """A timed step of the preparation, reported for information."""

    what: str
    seconds: float
    rows: int | None = None
    note: str = ""
    engine: str = "postgres"


@dataclass
class Timed:
    """A question's times: DuckDB's (seconds of each run) or the API's under load."""

    engine: str  # "duckdb", "postgres"
    label: str
    kind: str  # "reference", "target"
    result: LatencyResult
    rate: float | None = None  # requests/s asked (the API); None for DuckDB's serial runs
    groups: int = 0
    app_cpu: float | None = None
    db_cpu: float | None = None
    note: str = ""


@dataclass
class AnalyticsResults:
    responses: int = 0
    customers: int = 0
    steps: list[Step] = field(default_factory=list)
    timed: list[Timed] = field(default_factory=list)
    equal: list[tuple[str, bool, int, str]] = field(default_factory=list)  # label, ok, groups
    queries: dict[str, str] = field(default_factory=dict)  # label → "N queries, x ms of SQL"
    notes: list[str] = field(default_factory=list)

    def duck_p95(self, label: str) -> float | None:
        for t in self.timed:
            if t.engine == "duckdb" and t.label == label:
                return t.result.percentile(95)
        return None


@dataclass
class Seeded:
    workspace_id: int
    survey_id: int
    api_key: str
    branch_ids: list[int]  # B01 … B30
    employee_ids: list[int]  # EMPLOYEES_PER_BRANCH per branch, in branch order
    product_ids: list[int]
    touchpoint_ids: list[int]
    touchpoint_channel_ids: list[int]
    session_cookie: str  # "sessionid=…" of a CX manager, for the dashboards
    seconds: float


@dataclass(frozen=True)
class Window:
    """The last MONTHS whole months, in the workspace's time zone."""

    start: dt.datetime  # aware, local midnight of the first day
    end: dt.datetime  # aware, local midnight of the first day after

    @classmethod
    def of(cls, today: dt.date) -> Window:
        zone = ZoneInfo(TIME_ZONE)
        first = today.replace(day=1)
        months = first.year * 12 + first.month - 1 - MONTHS
        start = dt.date(months // 12, months % 12 + 1, 1)
        return cls(
            dt.datetime.combine(start, dt.time(), zone), dt.datetime.combine(first, dt.time(), zone)
        )

    @property
    def days(self) -> int:
        return (self.end.date() - self.start.date()).days

    def query(self, group_by: str) -> str:
        return "/api/v1/analytics/nps?" + urllib.parse.urlencode(
            {
                "survey": SURVEY,
                "since": self.start.isoformat(),
                "until": self.end.isoformat(),
                "group_by": group_by,
            }
        )

    def page(self, by: str, every: str) -> str:
        """The dashboard over the window (its dates are inclusive)."""
        last = self.end.date() - dt.timedelta(days=1)
        return "/analytics/?" + urllib.parse.urlencode(
            {"since": self.start.date().isoformat(), "until": last.isoformat(), "by": by,
             "every": every}
        )  # fmt: skip

    def trend(self, every: str) -> str:
        return "/api/v1/analytics/trend?" + urllib.parse.urlencode(
            {"survey": SURVEY, "since": self.start.isoformat(), "until": self.end.isoformat(),
             "every": every}
        )  # fmt: skip

    def last_days(self, path: str, days: int = 90, **params: str) -> str:
        """An API path over the window's last ``days`` days (whole local days)."""
        since = self.end - dt.timedelta(days=days)  # wall-clock arithmetic: local midnight
        return f"{path}?" + urllib.parse.urlencode(
            {"survey": SURVEY, "since": since.isoformat(), "until": self.end.isoformat(), **params}
        )

    def targets(self) -> list[tuple[str, str]]:
        """(label, path) of every request with the 300 ms target, timed under load: the API's
        questions and its trend, then the analytics pages (a CX manager's, who sees the whole
        workspace): the dashboard by default and by a few breakdowns (the heat map is on each),
        the pain map, key drivers, competitors, the planner and the initiatives."""
        return [
            (f"GET /api/v1/analytics/nps {q.label}", self.query(q.group_by)) for q in QUESTIONS
        ] + [
            ("GET /api/v1/analytics/trend 12 months by week", self.trend("week")),
            ("GET /analytics/ (default: 90 days)", "/analytics/"),
            ("GET /analytics/ 12 months, by branch", self.page("branch", "month")),
            ("GET /analytics/ 12 months, by employee", self.page("employee", "week")),
            ("GET /analytics/ 12 months, by product, per day", self.page("product", "day")),
            ("GET /analytics/pain (90 days)", "/analytics/pain"),
            ("GET /analytics/drivers (90 days)", "/analytics/drivers"),
            (
                "GET /api/v1/analytics/pain (90 days, per week)",
                self.last_days("/api/v1/analytics/pain", every="week"),
            ),
            (
                "GET /api/v1/analytics/drivers (90 days)",
                self.last_days("/api/v1/analytics/drivers"),
            ),
            ("GET /analytics/competitors", "/analytics/competitors"),
            ("GET /analytics/planner by employee", "/analytics/planner?by=employee"),
            ("GET /analytics/initiatives", "/analytics/initiatives"),
        ]

    def in_process(self) -> list[tuple[str, str]]:
        """The targets, and the dashboard by every other breakdown, measured in-process only
        (``inprocess.measure``): each breakdown under load would add a minute to the run."""
        return self.targets() + [
            (f"GET /analytics/ 12 months, by {by}", self.page(by, "week"))
            for by in ("region", "team", "channel", "touchpoint", "stage", "segment")
        ]


# --- Django side (subprocesses) -------------------------------------------------------------


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cxloop.settings")
    import django

    django.setup()


def seed() -> dict[str, Any]:
    """In the subprocess: the workspace, its organisation, the survey and an API key, made by
    cxloop's services (the customers and responses are loaded in SQL afterwards), and a CX
    manager logged in for the dashboards."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from cxloop.accounts.models import Membership, Role
    from cxloop.accounts.services import create_api_key, create_workspace
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
    from cxloop.surveys.definition import default_definition
    from cxloop.surveys.services import save_survey

    started = time.perf_counter()
    workspace = create_workspace(SLUG, "Benchmark Analytics", via="cli")
    workspace.time_zone = TIME_ZONE
    workspace.phone_region = "MD"
    workspace.save(update_fields=["time_zone", "phone_region"])
    with transaction.atomic():
        regions = Region.objects.bulk_create(
            Region(workspace=workspace, code=f"R{r}", name=f"Region {r}") for r in range(1, 6)
        )
        branches = Branch.objects.bulk_create(
            Branch(workspace=workspace, region=regions[(b - 1) % len(regions)], code=f"B{b:02d}",
                   name=f"Store No. {b}")
            for b in range(1, BRANCHES + 1)
        )  # fmt: skip
        teams = Team.objects.bulk_create(
            Team(workspace=workspace, branch=branch, code=f"T{branch.code}", name=branch.name)
            for branch in branches
        )
        employees = Employee.objects.bulk_create(
            Employee(workspace=workspace, code=f"E{b:02d}{e}", name=f"Employee {b}-{e}",
                     branch=branch, team=team)
            for b, (branch, team) in enumerate(zip(branches, teams, strict=True), start=1)
            for e in range(EMPLOYEES_PER_BRANCH)
        )  # fmt: skip
        products = Product.objects.bulk_create(
            Product(workspace=workspace, code=f"P{p:02d}", name=f"Product {p}")
            for p in range(1, PRODUCTS + 1)
        )
        channels = {
            c.code: c
            for c in Channel.objects.bulk_create(
                Channel(workspace=workspace, code=code, name=code.title()) for code in CHANNELS
            )
        }
        journey = Journey.objects.create(workspace=workspace, code="buy", name="Buy")
        stage = Stage.objects.create(workspace=workspace, journey=journey, code="pay", name="Pay")
        touchpoints = Touchpoint.objects.bulk_create(
            Touchpoint(workspace=workspace, stage=stage, channel=channels[channel], code=code,
                       name=code.replace("-", " ").title())
            for code, channel in TOUCHPOINTS
        )  # fmt: skip
    survey = save_survey(
        workspace,
        code=SURVEY,
        name="After the visit",
        kind="transactional",
        definition=default_definition("Benchmark Analytics"),
        rules={"touchpoints": [code for code, _ in TOUCHPOINTS], "send_window": None},
        via="cli",
    )
    from cxloop.analytics.models import Initiative

    window = Window.of(dt.datetime.now(ZoneInfo(TIME_ZONE)).date())
    for i, (name, branch_codes) in enumerate(INITIATIVES):
        initiative = Initiative.objects.create(
            workspace=workspace,
            name=name,
            date=window.start.date() + dt.timedelta(days=30 + 55 * i),
        )
        initiative.branches.set([b for b in branches if b.code in branch_codes])
    _key, raw = create_api_key(workspace, "analytics benchmark", ["read"], via="cli")
    manager = get_user_model().objects.create_user(
        "cxmanager", "cx@cx.example.com", "bench-password-1"
    )
    Membership.objects.create(user=manager, workspace=workspace, role=Role.CX_MANAGER)
    return {
        "workspace_id": workspace.pk,
        "survey_id": survey.pk,
        "api_key": raw,
        "branch_ids": [b.pk for b in branches],
        "employee_ids": [e.pk for e in employees],
        "product_ids": [p.pk for p in products],
        "touchpoint_ids": [t.pk for t in touchpoints],
        "touchpoint_channel_ids": [channels[channel].pk for _, channel in TOUCHPOINTS],
        "session_cookie": f"{settings.SESSION_COOKIE_NAME}={_session(manager, workspace.pk)}",
        "seconds": time.perf_counter() - started,
    }


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


def capture(paths: list[tuple[str, str]], key: str, cookie: str, explain: str) -> dict[str, Any]:
    """In the subprocess: each API path once through the test client (after one warm-up
    request) with its queries; ``explain``: "none", "slowest" (EXPLAIN ANALYZE of the slowest
    query of each) or "all"."""
    from django.test import Client

    out: dict[str, Any] = {}
    api = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {key}")
    pages = Client(HTTP_HOST=HOST, HTTP_ACCEPT=BROWSER_HEADERS["Accept"])
    name, _, value = cookie.partition("=")
    pages.cookies[name] = value
    for label, path in paths:
        client = api if path.startswith("/api/") else pages
        # The pages draw charts: also measured with none kept from before.
        out[label] = inprocess.measure(client, path, explain, cold=client is pages)
    return out


def cells_vs_raw(workspace_id: int, since: str, until: str) -> dict[str, Any]:
    """In the subprocess: the pain map (whole workspace, and one branch) and key drivers over
    [since, until), read from the reason cells and from the raw answers (``cells=False``):
    the best of three wall-clock times of each, in ms, and whether they agree."""
    from cxloop.accounts.models import Workspace
    from cxloop.analytics import drivers, pain, rollups
    from cxloop.surveys.models import Survey

    workspace = Workspace.objects.get(pk=workspace_id)
    survey = Survey.objects.get(workspace=workspace, code=SURVEY)
    start, end = dt.datetime.fromisoformat(since), dt.datetime.fromisoformat(until)
    rollups.prepare(workspace)
    jobs: dict[str, Callable[[bool], Any]] = {
        "pain map": lambda cells: pain.pain_map(
            pain.PainQuery(workspace=workspace, survey=survey, since=start, until=end),
            cells=cells,
        ),
        "pain map, one branch": lambda cells: pain.pain_map(
            pain.PainQuery(
                workspace=workspace,
                survey=survey,
                since=start,
                until=end,
                filters={"branch": ["B04"]},
            ),
            cells=cells,
        ),
        "key drivers": lambda cells: drivers.key_drivers(
            workspace, [survey], since=start, until=end, cells=cells
        ),
    }
    out: dict[str, Any] = {}
    for label, job in jobs.items():
        row: dict[str, Any] = {}
        answers = {}
        for cells in (True, False):
            times = []
            for _ in range(3):
                started = time.perf_counter()
                answers[cells] = job(cells)
                times.append(1000 * (time.perf_counter() - started))
            row["cells_ms" if cells else "raw_ms"] = min(times)
        row["equal"] = repr(answers[True]) == repr(answers[False])
        out[label] = row
    return out


def live(workspace_id: int, seconds: float, rate: float) -> dict[str, Any]:
    """In the subprocess: answers arriving while the dashboards are timed — ``rate`` a second,
    each a copy of a loaded answer answered now with another score, saved through the ORM (its
    ``post_save`` marks the day dirty, as the product's own saves do) — and the analytics
    heartbeat step (``rollups.tick``) every 2 s, as the dispatcher runs it."""
    import random
    import signal

    from cxloop.analytics import rollups
    from cxloop.core import clock
    from cxloop.surveys.models import Response

    templates = list(
        Response.objects.filter(
            workspace_id=workspace_id, is_test=False, score__isnull=False
        ).order_by("-pk")[:500]
    )
    rng = random.Random(7)
    stopped: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    created = ticks = 0
    started = time.monotonic()
    next_tick = started + 2.0
    while (elapsed := time.monotonic() - started) < seconds and not stopped:
        due = started + created / rate
        if time.monotonic() >= due:
            row = rng.choice(templates)
            row.pk = None
            row.id = None
            row.external_id = f"live-{os.getpid()}-{created}"
            row.invitation = None  # one answer per invitation
            row.answered_at = clock.now()
            row.score = rng.choice((0, 3, 6, 7, 8, 9, 10, 10))
            row.comment = ""
            row.save(force_insert=True)
            created += 1
        if time.monotonic() >= next_tick:
            rollups.tick()
            ticks += 1
            next_tick += 2.0
        time.sleep(0.02)
    return {"created": created, "ticks": ticks, "seconds": elapsed}


def python(backend: Backend, *args: str, timeout: float = 900) -> dict[str, Any]:
    """Run ``python -m benchmarks.analytics ARGS``; the JSON object it printed last."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.analytics", *args],
        cwd=ROOT,
        env=backend.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise surveys.SetupError(
            f"benchmarks.analytics {args[0]} failed ({proc.returncode}):\n{proc.stderr}"
        )
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


# --- The load, in SQL -----------------------------------------------------------------------

CUSTOMERS_SQL = """
INSERT INTO customers_customer (created_at, updated_at, external_id, name, email, phone,
    language, time_zone, segment, is_b2b, consent, attributes, account_id, workspace_id)
SELECT now(), now(), 'C' || lpad(i::text, 7, '0'), 'Customer ' || i,
    'c' || lpad(i::text, 7, '0') || '@example.com', '+3736' || lpad(i::text, 7, '0'),
    (ARRAY['ro', 'ro', 'ru', 'ru', 'en'])[1 + i %% 5], '', (%(segments)s::text[])[1 + i %% %(n_segments)s],
    false, '{"email": true}', '{}', NULL, %(workspace)s
FROM generate_series(1, %(customers)s) AS i
"""

# One row per i of generate_series. The innermost subquery draws every random number once per
# row (OFFSET 0 keeps the planner from inlining it and calling random() again); the next ones
# place the answer (branch, day, hour) and score it with the branch's and the weekday's effect.
RESPONSES_SQL = """
INSERT INTO surveys_response (external_id, score, comment, answers, language, answered_at,
    source, may_contact, contact_phone, is_test, created_at, updated_at, branch_id, channel_id,
    customer_id, employee_id, interaction_id, invitation_id, product_id, touchpoint_id,
    workspace_id, survey_id)
SELECT
    'demo-' || lpad(i::text, 8, '0'),
    score,
    CASE WHEN score <= 6 AND r_text < 0.4
         THEN (%(comments)s::text[])[1 + floor(r_text * 10)::int] ELSE '' END,
    CASE WHEN score <= 6 AND r_text < 0.7
         THEN jsonb_build_object('reasons', (CASE WHEN r_text < 0.25 THEN '["waiting"]'
             WHEN r_text < 0.4 THEN '["waiting", "staff"]' WHEN r_text < 0.55 THEN '["price"]'
             ELSE '["quality"]' END)::jsonb)
         WHEN score >= 9 AND r_lang < 0.3 THEN '{"reasons": ["staff"]}'::jsonb
         ELSE '{}'::jsonb END,
    (ARRAY['ro', 'ro', 'ro', 'ru', 'ru', 'en'])[1 + floor(r_lang * 6)::int],
    answered_at,
    CASE WHEN r_src < 0.6 THEN 'email' WHEN r_src < 0.95 THEN 'web' ELSE 'link' END,
    CASE WHEN score <= 6 THEN r_text < 0.7 END,
    '',
    r_test < 0.002,
    answered_at + interval '1 second',
    answered_at + interval '1 second',
    (%(branch_ids)s::bigint[])[b],
    (%(channel_ids)s::bigint[])[tp],
    %(customer_min)s::bigint + floor(r_cust * %(customers)s)::bigint,
    CASE WHEN r_emp < 0.95
         THEN (%(employee_ids)s::bigint[])[(b - 1) * %(per_branch)s + 1
                                           + floor(r_emp / 0.95 * %(per_branch)s)::int] END,
    NULL,
    NULL,
    (%(product_ids)s::bigint[])[1 + floor(r_prod * %(products)s)::int],
    (%(touchpoint_ids)s::bigint[])[tp],
    %(workspace)s,
    %(survey)s
FROM (
    SELECT *,
        CASE WHEN r_null < 0.01 THEN NULL
             WHEN r_cat < 0.16 - 0.5 * effect THEN floor(7 * sqrt(r_score))::smallint
             WHEN r_cat < 0.48 - effect THEN (7 + (r_score < 0.45)::int)::smallint
             ELSE (9 + (r_score < 0.55)::int)::smallint END AS score
    FROM (
        SELECT *,
            (%(branch_effect)s::float8[])[b] + (%(weekday_effect)s::float8[])[weekday] AS effect,
            (%(start)s::timestamp + day * interval '1 day' + hour * interval '1 hour'
             + floor(r_sec * 3600) * interval '1 second') AT TIME ZONE %(tz)s AS answered_at
        FROM (
            SELECT *,
                1 + least(%(branches)s - 1, floor(%(branches)s * power(r_branch, 1.4))::int) AS b,
                (%(start_isodow)s - 1 + floor(r_day * %(days)s)::int) %% 7 + 1 AS weekday,
                floor(r_day * %(days)s)::int AS day,
                CASE WHEN r_hour < 0.05 THEN floor(r_hour2 * 24)::int
                     ELSE 9 + floor(6 * (r_hour2 + r_hour3))::int END AS hour,
                1 + floor(r_tp * %(touchpoints)s)::int AS tp
            FROM (
                SELECT i, random() AS r_branch, random() AS r_day, random() AS r_hour,
                    random() AS r_hour2, random() AS r_hour3, random() AS r_sec,
                    random() AS r_null, random() AS r_cat, random() AS r_score,
                    random() AS r_test, random() AS r_emp, random() AS r_prod, random() AS r_tp,
                    random() AS r_cust, random() AS r_lang, random() AS r_src, random() AS r_text
                FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
                OFFSET 0
            ) AS drawn
            OFFSET 0
        ) AS placed
        OFFSET 0
    ) AS effects
    OFFSET 0
) AS scored
"""

COMMENTS = [
    "Waited forty minutes at the till.",
    "The card machine did not work and nobody helped.",
    "Rude answer when I asked about the delivery.",
    "The product I came for was out of stock again.",
]

# After the load with per-row checks off: every reference of the new rows resolves (what the
# foreign-key triggers would have checked), in one pass.
REFERENCES_SQL = """
SELECT count(*) FROM surveys_response r
LEFT JOIN organisation_branch b ON b.id = r.branch_id
LEFT JOIN organisation_employee e ON e.id = r.employee_id
LEFT JOIN organisation_product p ON p.id = r.product_id
LEFT JOIN organisation_channel c ON c.id = r.channel_id
LEFT JOIN organisation_touchpoint t ON t.id = r.touchpoint_id
LEFT JOIN customers_customer u ON u.id = r.customer_id
WHERE r.workspace_id = %(workspace)s AND (
    (r.branch_id IS NOT NULL AND b.id IS NULL) OR (r.employee_id IS NOT NULL AND e.id IS NULL)
    OR (r.product_id IS NOT NULL AND p.id IS NULL) OR (r.channel_id IS NOT NULL AND c.id IS NULL)
    OR (r.touchpoint_id IS NOT NULL AND t.id IS NULL)
    OR (r.customer_id IS NOT NULL AND u.id IS NULL))
"""

# The raw responses as DuckDB gets them: one row per response, codes instead of ids, the
# instant in UTC and the local time in the workspace's zone. The local time comes from
# PostgreSQL: DuckDB's ICU carries time-zone rules of its own, which may differ from the
# system's tzdata that PostgreSQL and Python (so cxloop) use (see ``tz_disagreement``).
EXPORT_SQL = """
COPY (
    SELECT r.id, s.code, r.answered_at, r.answered_at AT TIME ZONE w.time_zone, r.score,
        r.is_test, b.code, e.code, p.code, c.code, t.code, u.segment
    FROM surveys_response r
    JOIN accounts_workspace w ON w.id = r.workspace_id
    JOIN surveys_survey s ON s.id = r.survey_id
    LEFT JOIN organisation_branch b ON b.id = r.branch_id
    LEFT JOIN organisation_employee e ON e.id = r.employee_id
    LEFT JOIN organisation_product p ON p.id = r.product_id
    LEFT JOIN organisation_channel c ON c.id = r.channel_id
    LEFT JOIN organisation_touchpoint t ON t.id = r.touchpoint_id
    LEFT JOIN customers_customer u ON u.id = r.customer_id
    WHERE r.workspace_id = {workspace}
) TO STDOUT (FORMAT csv)
"""
EXPORT_COLUMNS = {
    "id": "BIGINT",
    "survey": "VARCHAR",
    "answered_at": "TIMESTAMPTZ",
    "answered_local": "TIMESTAMP",
    "score": "SMALLINT",
    "is_test": "BOOLEAN",
    "branch": "VARCHAR",
    "employee": "VARCHAR",
    "product": "VARCHAR",
    "channel": "VARCHAR",
    "touchpoint": "VARCHAR",
    "segment": "VARCHAR",
}


# --- The benchmark's side -------------------------------------------------------------------


def prepare(results: AnalyticsResults, backend: Postgres) -> Seeded:
    started = time.perf_counter()
    backend.create()
    surveys.cxloop(backend, "migrate", "--noinput")
    migrated = time.perf_counter()
    seeded = Seeded(**python(backend, "seed"))
    log(
        f"postgres: migrated in {migrated - started:.1f} s; workspace, {BRANCHES} branches, "
        f"survey and API key in {seeded.seconds:.1f} s"
    )
    return seeded


def load_customers(results: AnalyticsResults, backend: Postgres, seeded: Seeded) -> int:
    """The customers in one INSERT … SELECT; the id of the first (their ids are consecutive)."""
    started = time.perf_counter()
    with backend.connect() as conn:
        conn.execute(
            CUSTOMERS_SQL,
            {
                "segments": list(SEGMENTS),
                "n_segments": len(SEGMENTS),
                "workspace": seeded.workspace_id,
                "customers": results.customers,
            },
        )
        conn.commit()
        row = conn.execute(
            "SELECT min(id), max(id), count(*) FROM customers_customer WHERE workspace_id = %s",
            (seeded.workspace_id,),
        ).fetchone()
    first, last, count = row if row else (0, 0, 0)
    if count != results.customers or last - first + 1 != count:
        raise surveys.SetupError(
            f"expected {results.customers:,} customers with consecutive ids, found {count:,} "
            f"from {first} to {last}"
        )
    seconds = time.perf_counter() - started
    results.steps.append(Step(f"load {count:,} customers (SQL)", seconds, count))
    return int(first)


def _plain_indexes(conn: Any) -> list[tuple[str, str]]:
    """The indexes of surveys_response that back no constraint (name, CREATE INDEX …)."""
    rows = conn.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = 'surveys_response'
          AND NOT EXISTS (
              SELECT 1 FROM pg_constraint c
              WHERE c.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)
        ORDER BY i.indexname
        """
    ).fetchall()
    return [(str(name), str(definition)) for name, definition in rows]


def _in_threads(jobs: list[Callable[[], None]]) -> None:
    """Run ``jobs`` on threads of their own; the first failure is raised once all are done."""
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # re-raised below, on the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,), daemon=True) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def load_responses(
    results: AnalyticsResults,
    check: Check,
    backend: Postgres,
    seeded: Seeded,
    window: Window,
    customer_min: int,
    sessions: int = 2,
) -> None:
    """N responses by INSERT … SELECT FROM generate_series, as a bulk load is done: the plain
    indexes dropped and rebuilt afterwards, per-row foreign-key triggers off (the benchmark
    runs as a superuser, like ``cxloop demo``) and one set-based check of the references."""
    n = results.responses
    params: dict[str, Any] = {
        "comments": COMMENTS,
        "branch_ids": seeded.branch_ids,
        "channel_ids": seeded.touchpoint_channel_ids,
        "customer_min": customer_min,
        "customers": results.customers,
        "employee_ids": seeded.employee_ids,
        "per_branch": EMPLOYEES_PER_BRANCH,
        "product_ids": seeded.product_ids,
        "products": len(seeded.product_ids),
        "touchpoint_ids": seeded.touchpoint_ids,
        "touchpoints": len(seeded.touchpoint_ids),
        "workspace": seeded.workspace_id,
        "survey": seeded.survey_id,
        "branch_effect": BRANCH_EFFECT,
        "weekday_effect": WEEKDAY_EFFECT,
        "start": window.start.replace(tzinfo=None),
        "tz": TIME_ZONE,
        "branches": BRANCHES,
        "start_isodow": window.start.isoweekday(),
        "days": window.days,
    }
    started = time.perf_counter()
    with backend.connect() as conn:
        indexes = _plain_indexes(conn)
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.commit()

    def insert(part: int) -> Callable[[], None]:
        def job() -> None:
            with backend.connect() as conn:
                conn.execute("SET session_replication_role = replica")
                conn.execute("SELECT setseed(%s)", (0.1 + 0.1 * part,))  # the same rows each run
                first, last = 1 + part * n // sessions, (part + 1) * n // sessions
                conn.execute(RESPONSES_SQL, params | {"first": first, "last": last})
                conn.commit()

        return job

    log(f"postgres: INSERT … SELECT of {n:,} responses in {sessions} sessions")
    _in_threads([insert(part) for part in range(sessions)])
    inserted = time.perf_counter()

    def build(definitions: list[str]) -> Callable[[], None]:
        def job() -> None:
            with psycopg_autocommit(backend) as conn:
                conn.execute("SET maintenance_work_mem = '512MB'")
                conn.execute("SET max_parallel_maintenance_workers = 0")
                for definition in definitions:
                    conn.execute(definition)

        return job

    log(f"postgres: rebuilding {len(indexes)} indexes on {sessions} connections")
    _in_threads([build([d for _, d in indexes][k::sessions]) for k in range(sessions)])
    indexed = time.perf_counter()
    with backend.connect() as conn:
        row = conn.execute(REFERENCES_SQL, {"workspace": seeded.workspace_id}).fetchone()
        dangling = int(row[0]) if row else -1
        row = conn.execute(
            "SELECT count(*) FROM surveys_response WHERE workspace_id = %s", (seeded.workspace_id,)
        ).fetchone()
        count = int(row[0]) if row else 0
    done = time.perf_counter()
    check(f"postgres: {n:,} responses loaded", count == n, f"found {count:,}")
    check("postgres: every reference of the loaded responses resolves", dangling == 0,
          f"{dangling:,} responses with a dangling reference")  # fmt: skip
    results.steps.append(
        Step(
            f"load {n:,} responses (SQL)",
            done - started,
            n,
            f"INSERT … SELECT {inserted - started:.0f} s ({sessions} sessions), "
            f"{len(indexes)} indexes rebuilt {indexed - inserted:.0f} s, "
            f"references checked {done - indexed:.0f} s",
        )
    )


@contextlib.contextmanager
def psycopg_autocommit(backend: Postgres) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(backend.url(), autocommit=True, connect_timeout=5) as conn:
        yield conn


def vacuum(results: AnalyticsResults, backend: Postgres) -> None:
    started = time.perf_counter()
    backend.analyze()  # VACUUM ANALYZE: hint bits, the visibility map, planner statistics
    results.steps.append(
        Step("VACUUM ANALYZE", time.perf_counter() - started, note="after the load, as autovacuum")
    )


def table_sizes(backend: Postgres) -> str:
    with backend.connect() as conn:
        row = conn.execute(
            "SELECT pg_table_size('surveys_response'), pg_indexes_size('surveys_response'), "
            "pg_total_relation_size('analytics_dailycell') "
            "+ pg_total_relation_size('analytics_hourlycell'), "
            "pg_database_size(current_database())"
        ).fetchone()
    table, indexes, cells, database = row if row else (0, 0, 0, 0)
    return (
        f"surveys_response {table / 2**30:.1f} GiB + {indexes / 2**30:.1f} GiB of indexes; "
        f"the rollup cells {cells / 2**20:,.0f} MiB; the database {database / 2**30:.1f} GiB"
    )


def rebuild_rollups(results: AnalyticsResults, backend: Postgres) -> None:
    """``cxloop analytics_rebuild``: the SQL load bypassed the signals that mark days dirty."""
    log("postgres: cxloop analytics_rebuild")
    started = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "cxloop"), "analytics_rebuild", "--workspace", SLUG],
        cwd=ROOT,
        env=backend.env(),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise surveys.SetupError(
            f"cxloop analytics_rebuild failed ({proc.returncode}):\n{proc.stderr}"
        )
    out = proc.stdout
    seconds = time.perf_counter() - started
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    started = time.perf_counter()
    with psycopg_autocommit(backend) as conn:
        # What autovacuum would do within a minute of the rebuild's commit.
        conn.execute("ANALYZE analytics_dailycell")
        conn.execute("ANALYZE analytics_hourlycell")
        conn.execute("ANALYZE analytics_reasoncell")
    results.steps.append(
        Step(
            "rollup rebuild (cxloop analytics_rebuild)",
            seconds,
            results.responses,
            f"{summary.split(': ', 1)[-1]}; then ANALYZE of the cells "
            f"{time.perf_counter() - started:.1f} s",
        )
    )


def export_parquet(
    results: AnalyticsResults, check: Check, backend: Postgres, seeded: Seeded
) -> Path:
    """The raw responses to Parquet: COPY TO STDOUT (CSV, UTC times) into a file, then DuckDB."""
    import duckdb

    csv_path = backend.tmp / "responses.csv"
    parquet = backend.tmp / "responses.parquet"
    log("postgres: COPY of the raw responses TO STDOUT (CSV)")
    started = time.perf_counter()
    with backend.connect() as conn, conn.cursor() as cur, csv_path.open("wb") as out:
        cur.execute("SET TimeZone = 'UTC'")
        with cur.copy(EXPORT_SQL.format(workspace=int(seeded.workspace_id))) as copy:
            for chunk in copy:
                out.write(chunk)
    copied = time.perf_counter()
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in EXPORT_COLUMNS.items())
    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT * FROM read_csv({_literal(csv_path)}, header = false, "
            f"columns = {{{columns}}})) TO {_literal(parquet)} (FORMAT parquet, COMPRESSION zstd)"
        )
        row = con.execute(f"SELECT count(*) FROM read_parquet({_literal(parquet)})").fetchone()
    finally:
        con.close()
    done = time.perf_counter()
    rows = int(row[0]) if row else 0
    csv_size = csv_path.stat().st_size
    csv_path.unlink()
    check(
        "duckdb: the Parquet file holds every response",
        rows == results.responses,
        f"{rows:,} rows, {results.responses:,} loaded",
    )
    results.steps.append(
        Step("export: COPY TO STDOUT (CSV)", copied - started, rows,
             f"{csv_size / 2**20:,.0f} MiB of CSV, answered_at in UTC", engine="postgres")
    )  # fmt: skip
    results.steps.append(
        Step("CSV → Parquet (DuckDB COPY)", done - copied, rows,
             f"{parquet.stat().st_size / 2**20:,.0f} MiB of Parquet (zstd)", engine="duckdb")
    )  # fmt: skip
    return parquet


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


DUCK_SQL = """
SELECT {keys}, count(*) AS n,
    count(*) FILTER (WHERE score >= 9) AS promoters,
    count(*) FILTER (WHERE score BETWEEN 7 AND 8) AS passives,
    count(*) FILTER (WHERE score <= 6) AS detractors
FROM (
    SELECT *, answered_local AS local
    FROM read_parquet({path})
    WHERE survey = $survey AND NOT is_test AND score IS NOT NULL
      AND answered_at >= $since AND answered_at < $until
)
GROUP BY ALL
"""

Counted = dict[tuple[str, ...], tuple[int, int, int, int]]  # key → n, promoters, passives, …


def duck_reference(results: AnalyticsResults, parquet: Path, window: Window) -> dict[str, Counted]:
    """Each question in DuckDB over the Parquet file: its answer, and its time over runs."""
    import duckdb

    answers: dict[str, Counted] = {}
    con = duckdb.connect()
    try:
        threads = con.execute("SELECT current_setting('threads')").fetchone()
        for q in QUESTIONS:
            sql = DUCK_SQL.format(
                keys=", ".join(f"{expr} AS {name}" for name, expr in q.keys),
                path=_literal(parquet),
            )
            params = {"survey": SURVEY, "since": window.start, "until": window.end}
            rows = con.execute(sql, params).fetchall()  # warm: the file's metadata, the pages
            times = []
            for _ in range(DUCK_RUNS):
                started = time.perf_counter()
                con.execute(sql, params).fetchall()
                times.append((time.perf_counter() - started) * 1000)
            width = len(q.keys)
            answers[q.label] = {
                tuple(_key_text(name, value) for (name, _), value in zip(q.keys, row[:width], strict=True)):
                    (int(row[width]), int(row[width + 1]), int(row[width + 2]),
                     int(row[width + 3]))
                for row in rows
            }  # fmt: skip
            results.timed.append(
                Timed(
                    "duckdb",
                    q.label,
                    "reference",
                    LatencyResult(len(times), sum(times) / 1000, times),
                    groups=len(rows),
                    note=f"{DUCK_RUNS} runs in one process, {threads[0] if threads else '?'} "
                    "threads",
                )
            )
        tz_disagreement(results, con, parquet)
    finally:
        con.close()
    return answers


def tz_disagreement(results: AnalyticsResults, con: Any, parquet: Path) -> None:
    """A note: for how many responses DuckDB's own time-zone rules (ICU) give another local
    hour than PostgreSQL's (the system's tzdata, which cxloop uses through Python too)."""
    row = con.execute(
        "SELECT count(*), string_agg(DISTINCT strftime(timezone('UTC', answered_at), '%Y-%m-%d'),"
        f" ', ') FROM read_parquet({_literal(parquet)}) "
        f"WHERE timezone('{TIME_ZONE}', answered_at) <> answered_local"
    ).fetchone()
    version = con.execute("SELECT library_version FROM pragma_version()").fetchone()
    if row and row[0]:
        results.notes.append(
            f"DuckDB {version[0] if version else ''}'s own time-zone rules (ICU) give "
            f"{row[0]:,} responses another local time in {TIME_ZONE} than PostgreSQL's (the "
            f"system's tzdata, which cxloop also uses in Python), on {row[1]} (UTC): the "
            "daylight-saving changes. The reference groups by PostgreSQL's local time, exported "
            "with the rows."
        )


def _key_text(name: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if name == "month" and isinstance(value, dt.date):
        return f"{value:%Y-%m}"
    return str(value)


# --- The API --------------------------------------------------------------------------------


def api_get(port: int, path: str, key: str, cookie: str, timeout: float = 60) -> Response:
    """``GET path`` on its own connection (as a client without keep-alive): the API with the
    key, a dashboard page with a browser's headers and the session cookie."""
    if path.startswith("/api/"):
        headers = {"Accept": "application/json", "Authorization": f"Bearer {key}"}
    else:
        headers = BROWSER_HEADERS | {"Cookie": cookie}
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.read())
    finally:
        conn.close()


def api_load(
    results: AnalyticsResults,
    check: Check,
    backend: Postgres,
    seeded: Seeded,
    server: Gunicorn,
    window: Window,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """Each request warmed up (the API's answers kept), then under open-loop load."""
    port, key, cookie = server.port, seeded.api_key, seeded.session_cookie
    paths = [("GET /healthz (reference)", "reference", "/healthz")] + [
        (label, "target", path) for label, path in window.targets()
    ]
    questions = {f"GET /api/v1/analytics/nps {q.label}": q for q in QUESTIONS}
    answers: dict[str, Any] = {}
    for label, kind, path in paths:
        started = time.perf_counter()
        for _ in range(WARM):
            answer = api_get(port, path, key, cookie)
        first = time.perf_counter() - started
        # The dashboard shows its tables whatever the data; the other pages may have none.
        page = kind == "target" and path.split("?")[0] == "/analytics/"
        ok = answer.status == 200 and (not page or b"<table" in answer.body)
        check(
            f"postgres: {label} answers 200" + (" with tables" if page else ""),
            ok,
            f"HTTP {answer.status}: {answer.body[:300]!r}",
        )
        if label in questions and ok:
            answers[questions[label].label] = answer.json()
        log(f"postgres: {label}: {WARM} warm-up requests in {first:.1f} s")
    for label, kind, path in paths:
        timed_load(results, check, backend, seeded, server, label, kind, path, rate, seconds)
    return answers


def _flush_redis(db: int) -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


def timed_load(
    results: AnalyticsResults,
    check: Check,
    backend: Postgres,
    seeded: Seeded,
    server: Gunicorn,
    label: str,
    kind: str,
    path: str,
    rate: float,
    seconds: float,
) -> None:
    """``path`` under open-loop load at ``rate`` for ``seconds``: one ``Timed`` result."""
    port, key, cookie = server.port, seeded.api_key, seeded.session_cookie
    log(f"postgres: {label} at {rate:g}/s for {seconds:g} s")
    app = CpuMeter(process_tree(server.pid))
    db = CpuMeter(*surveys.db_backends(backend.dbname))
    abandon_at = time.perf_counter() + seconds + ABANDON_AFTER

    def call(i: int, path: str = path, abandon_at: float = abandon_at) -> Response:
        if time.perf_counter() > abandon_at:
            return Response(ABANDONED, b"not sent: the server had fallen too far behind")
        return api_get(port, path, key, cookie)

    with app, db:
        result = run_calls(call, rate=rate, seconds=seconds, threads=API_THREADS, expect=200)
    abandoned = result.statuses.get(ABANDONED, 0)
    if abandoned:
        results.notes.append(
            f"{label}: {abandoned:,} of {result.requests:,} requests not sent, the server "
            f"being more than {ABANDON_AFTER:g} s behind: its percentiles are lower bounds."
        )
    # Dropped requests are a missed target (the note above), not a wrong answer.
    check(
        f"postgres: {label} answered 200 every time",
        result.statuses.get(200, 0) == result.requests - abandoned,
        f"statuses {result.statuses}; {result.errors[:2]}",
    )
    results.timed.append(
        Timed("postgres", label, kind, result, rate, app_cpu=app.seconds, db_cpu=db.seconds)
    )


LIVE_RATE = 1.0  # answers a second while the live pages are timed: 3 times 10 million a year
LIVE_PAGES = (
    ("GET /analytics/ (default: 90 days), answers arriving", "/analytics/"),
    ("GET /analytics/ 90 days by employee, answers arriving", "/analytics/?by=employee"),
    ("GET /analytics/pain (90 days), answers arriving", "/analytics/pain"),
)


def live_load(
    results: AnalyticsResults,
    check: Check,
    backend: Postgres,
    seeded: Seeded,
    server: Gunicorn,
    rate: float,
    seconds: float,
) -> None:
    """The pages whose period includes today, timed while answers arrive (``live``, in a
    subprocess, with the analytics heartbeat): their numbers change every second, so their
    charts are new specs; ``CHART_MAX_AGE`` (60 s) bounds how often they are drawn."""
    total = len(LIVE_PAGES) * (seconds + ABANDON_AFTER) + 30
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "benchmarks.analytics", "live",
            "--workspace", str(seeded.workspace_id),
            "--seconds", str(total), "--rate", str(LIVE_RATE),
        ],
        cwd=ROOT, env=backend.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(5)  # the first answers and a heartbeat
        for label, path in LIVE_PAGES:
            timed_load(results, check, backend, seeded, server, label, "target", path, rate,
                       seconds)  # fmt: skip
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    try:
        done = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        done = {}
    check(
        "postgres: answers arrived during the live pages",
        proc.returncode == 0 and done.get("created", 0) > 0,
        f"exit {proc.returncode}: {err[-500:]}",
    )
    results.notes.append(
        f"Live pages: {done.get('created', 0):,} answers saved through the ORM in "
        f"{done.get('seconds', 0):.0f} s ({LIVE_RATE:g}/s) and {done.get('ticks', 0)} analytics "
        "heartbeats (every 2 s) while the pages were timed; charts at most CHART_MAX_AGE = 60 s "
        "behind (docs/dashboards.md#charts)."
    )


def _nps_equal(api: Any, p: int, d: int, n: int) -> bool:
    if n == 0:
        return api is None
    exact = 100.0 * (p - d) / n
    if not isinstance(api, int | float):
        return False
    if abs(api - exact) < 1e-9:
        return True
    # A rounded figure: as many decimals as the API gave, rounded half away from zero.
    decimals = max(0, -Decimal(repr(api)).as_tuple().exponent)  # type: ignore[operator]
    rounded = Decimal(p - d) * 100 / Decimal(n)
    return float(rounded.quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)) == api


def compare(results: AnalyticsResults, check: Check, answers: dict[str, Any],
            duck: dict[str, Counted]) -> None:  # fmt: skip
    """Every group's counts and NPS from the API against DuckDB's, and the overall figures."""
    for q in QUESTIONS:
        answer, reference = answers.get(q.label), duck.get(q.label)
        if answer is None or reference is None:
            results.equal.append((q.label, False, 0, "no answer to compare"))
            check(f"numbers equal DuckDB: {q.label}", False, "no answer to compare")
            continue
        problems: list[str] = []
        seen: set[tuple[str, ...]] = set()
        for group in answer.get("groups", []):
            key = tuple(_key_text(name, group["key"].get(name)) for name, _ in q.keys)
            seen.add(key)
            got = (group["n"], group["promoters"], group["passives"], group["detractors"])
            want = reference.get(key)
            if want is None:
                problems.append(f"{key}: not in DuckDB's answer")
            elif got != want:
                problems.append(f"{key}: API n/P/p/D {got}, DuckDB {want}")
            elif not _nps_equal(group["nps"], want[1], want[3], want[0]):
                problems.append(f"{key}: API NPS {group['nps']}, DuckDB's counts give "
                                f"{100 * (want[1] - want[3]) / want[0]}")  # fmt: skip
        problems += [f"{key}: missing from the API's answer" for key in reference.keys() - seen]
        overall = answer.get("overall", {})
        totals = tuple(sum(v[i] for v in reference.values()) for i in range(4))
        got = tuple(overall.get(k) for k in ("n", "promoters", "passives", "detractors"))
        if got != totals:
            problems.append(f"overall: API n/P/p/D {got}, DuckDB {totals}")
        elif not _nps_equal(overall.get("nps"), totals[1], totals[3], totals[0]):
            problems.append(f"overall: API NPS {overall.get('nps')}")
        ok = not problems
        detail = "; ".join(problems[:5]) + (f" … ({len(problems)} in all)" if len(problems) > 5
                                            else "")  # fmt: skip
        results.equal.append((q.label, ok, len(reference), detail))
        check(f"numbers equal DuckDB: {q.label} ({len(reference)} groups)", ok, detail)


def api_queries(
    results: AnalyticsResults, backend: Postgres, seeded: Seeded, window: Window
) -> None:
    """Each question's SQL once, in-process; the plan of the slowest query of a question that
    missed its target."""
    missed = {
        t.label
        for t in results.timed
        if t.engine == "postgres" and t.kind == "target"
        and not t.result.percentile(95) < API_TARGET_MS
    }  # fmt: skip
    info = python(
        backend, "queries", "--key", seeded.api_key, "--cookie", seeded.session_cookie,
        "--paths", json.dumps(window.in_process()), "--explain", "slowest" if missed else "none",
    )  # fmt: skip
    inprocess.report(
        info,
        missed,
        results.queries,
        results.notes,
        "Python (the statistics, the view, its charts and template)",
        API_TARGET_MS,
    )
    timed = {t.label for t in results.timed}
    for label, summary in results.queries.items():
        if label not in timed:  # measured in-process only: listed with its summary
            results.notes.append(f"{label} (in-process only): {summary}")
    # The pain map and key drivers from the reason cells against the raw answers they replace.
    since = window.end - dt.timedelta(days=90)  # local midnight (wall-clock arithmetic)
    versus = python(
        backend, "cells", "--workspace", str(seeded.workspace_id),
        "--since", since.isoformat(), "--until", window.end.isoformat(),
    )  # fmt: skip
    for label, row in versus.items():
        results.notes.append(
            f"{label}, last 90 days, in-process (best of 3): {row['cells_ms']:.0f} ms from the "
            f"reason cells, {row['raw_ms']:.0f} ms from the raw answers"
            + ("" if row["equal"] else " — THE RESULTS DIFFER")
        )


def below_average_note(results: AnalyticsResults, answers: dict[str, Any]) -> None:
    answer = answers.get("branch")
    if not answer:
        return
    flagged = [g["key"]["branch"] for g in answer["groups"] if g.get("below_average")]
    worse = [(f"B{b:02d}", e) for b, e in enumerate(BRANCH_EFFECT, start=1) if e < 0]
    big = [code for code, e in worse if e < -0.1]
    small = [code for code, e in worse if e >= -0.1]
    low = 100 * min(-e for _, e in worse if e >= -0.1)
    high = 100 * max(-e for _, e in worse if e >= -0.1)
    results.notes.append(
        f"Below average by branch (API, Benjamini-Hochberg at 5 %): {', '.join(flagged) or 'none'}"
        f"; the load lowered the promoter share of {', '.join(big)} by "
        f"{-100 * BRANCH_EFFECT[0 if not big else int(big[0][1:]) - 1]:.0f} points and of "
        f"{', '.join(small)} by {low:.1f}-{high:.1f} points."
    )


def bench(
    results: AnalyticsResults,
    check: Check,
    *,
    responses: int,
    customers: int,
    rate: float,
    seconds: float,
) -> None:
    """The whole suite on a throw-away PostgreSQL database; failures become failed checks."""
    results.responses, results.customers = responses, customers
    window = Window.of(dt.datetime.now(ZoneInfo(TIME_ZONE)).date())
    backend = Postgres()
    try:
        seeded = prepare(results, backend)
        customer_min = load_customers(results, backend, seeded)
        load_responses(results, check, backend, seeded, window, customer_min)
        vacuum(results, backend)
        rebuild_rollups(results, backend)
        results.notes.append(f"Sizes: {table_sizes(backend)}.")
        parquet = export_parquet(results, check, backend, seeded)
        log("duckdb: the questions over the Parquet file")
        duck = duck_reference(results, parquet, window)
        # The web workers share their drawn charts through Redis, as in production.
        redis_db = 11
        _flush_redis(redis_db)
        web_env = backend.env() | {"CACHE_URL": f"redis://127.0.0.1:6379/{redis_db}"}
        with Gunicorn(web_env, backend.tmp / "gunicorn.log") as server:
            log("postgres: gunicorn started")
            answers = api_load(results, check, backend, seeded, server, window, rate, seconds)
            live_load(results, check, backend, seeded, server, rate, seconds)
        compare(results, check, answers, duck)
        below_average_note(results, answers)
        api_queries(results, backend, seeded, window)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        import traceback

        traceback.print_exc()
        check("postgres: the analytics benchmark ran to its end", False, f"{exc}")
    finally:
        backend.destroy()  # the database (10M rows: GiBs) and the temporary files


# --- The report -----------------------------------------------------------------------------


def _per(cpu: float | None, count: int) -> str:
    if cpu is None or not count:
        return "-"
    return f"{cpu * 1e3 / count:,.1f}"


def report(results: AnalyticsResults, out: TextIO = sys.stdout) -> None:
    if not results.steps and not results.timed:
        return

    def say(line: str = "") -> None:
        print(line, file=out)

    say()
    say(
        f"cxloop analytics benchmark: {results.responses:,} responses over {MONTHS} months, "
        f"{results.customers:,} customers, {BRANCHES} branches, one NPS survey; workspace time "
        f"zone {TIME_ZONE}; gunicorn {WORKERS} sync workers, DEBUG off"
    )
    if results.steps:
        say()
        header = f"{'engine':<9} {'step':<42} {'seconds':>8} {'rows/s':>10}  {'':<11}  note"
        say(header)
        say("-" * len(header))
        for s in results.steps:
            rate = f"{s.rows / s.seconds:,.0f}" if s.rows and s.seconds else ""
            say(f"{s.engine:<9} {s.what:<42} {s.seconds:>8.1f} {rate:>10}  "
                f"{'information':<11}  {s.note}")  # fmt: skip
    if results.timed:
        say()
        header = (
            f"{'engine':<9} {'NPS question':<46} {'count':>6} {'req/s':>6} {'p50 ms':>7} "
            f"{'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} {'x DuckDB':>8}  {'target':<20} "
            f"{'app ms/req':>10} {'db ms/req':>9}  note"
        )
        say(header)
        say("-" * len(header))
        for t in results.timed:
            r = t.result
            p95 = r.percentile(95)
            # Requests sent (those dropped when the server fell too far behind count in the
            # percentiles, as lower bounds, but not in the CPU per request).
            done = len(r.latencies_ms) - r.statuses.get(ABANDONED, 0)
            if t.engine == "duckdb":
                label = f"NPS by {t.label}, Parquet (reference)"
                ratio, target, rate = "-", "reference", "-"
                note = f"{t.groups} groups; {t.note}"
            else:
                label = t.label
                question = t.label.removeprefix("GET /api/v1/analytics/nps ")
                duck = results.duck_p95(question) if t.kind == "target" else None
                ratio = "-" if not duck else f"{p95 / duck:.{1 if p95 >= duck else 2}f}x"
                if t.kind == "reference":
                    target = "reference"
                else:
                    status = "OK" if p95 < API_TARGET_MS else "MISSED"
                    target = f"p95 < {API_TARGET_MS:g} ms {status}"
                rate = f"{r.rate:.1f}"
                note = results.queries.get(t.label, "")
            say(
                f"{t.engine:<9} {label:<46} {done:>6,} {rate:>6} {r.percentile(50):>7.1f} "
                f"{p95:>7.1f} {r.percentile(99):>7.1f} {max(r.latencies_ms, default=0):>7.1f} "
                f"{ratio:>8}  {target:<20} {_per(t.app_cpu, done):>10} "
                f"{_per(t.db_cpu, done):>9}  {note}"
            )
            if r.late_dispatch:
                say(f"{'':<9} ({r.late_dispatch} requests dispatched > 5 ms late by the client)")
        say()
        api = next((t for t in results.timed if t.engine == "postgres"), None)
        if api and api.rate:
            say(
                f"Open loop at {api.rate:g} requests/s, {API_THREADS} client threads, a new "
                "connection per request; the API with Authorization: Bearer (scope read), over "
                f"the last {MONTHS} whole months; the dashboards with a CX manager's session "
                "cookie. x DuckDB: the API's p95 over DuckDB's p95 for the same question "
                "(in-process, no HTTP)."
            )
    for label, ok, groups, detail in results.equal:
        say(f"{label}: numbers equal DuckDB: {'OK' if ok else 'MISMATCH'} ({groups} groups)"
            + ("" if ok else f": {detail}"))  # fmt: skip
    for note in results.notes:
        say(note)


# --- Subprocess entry point -----------------------------------------------------------------


def explain(responses: int, customers: int) -> None:
    """Build and load the database as the benchmark does, then print each question's queries
    with their plans."""
    from .backends import STRIPPED_ENV

    results = AnalyticsResults(responses=responses, customers=customers)
    window = Window.of(dt.datetime.now(ZoneInfo(TIME_ZONE)).date())
    backend = Postgres()
    Backend.pycache = None
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> bool:
        checks.append((name, ok, detail))
        return ok

    try:
        seeded = prepare(results, backend)
        customer_min = load_customers(results, backend, seeded)
        load_responses(results, check, backend, seeded, window, customer_min)
        vacuum(results, backend)
        rebuild_rollups(results, backend)
        for name in STRIPPED_ENV:
            os.environ.pop(name, None)
        os.environ.update(backend.env())
        _django()
        found = capture(window.in_process(), seeded.api_key, seeded.session_cookie, "all")
        for label, row in found.items():
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
        prog="python -m benchmarks.analytics",
        description="explain: every query of the NPS API's questions with its plan, on a "
        "throw-away database loaded as the benchmark does. seed, queries: the benchmark's own "
        "subprocesses.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plans = sub.add_parser("explain")
    plans.add_argument("--responses", type=int, default=1_000_000)
    plans.add_argument("--customers", type=int, default=200_000)
    sub.add_parser("seed")
    versus = sub.add_parser("cells")
    versus.add_argument("--workspace", type=int, required=True)
    versus.add_argument("--since", required=True)
    versus.add_argument("--until", required=True)
    queries = sub.add_parser("queries")
    queries.add_argument("--key", required=True)
    queries.add_argument("--cookie", required=True)
    queries.add_argument("--paths", required=True, help="JSON: [[label, path], …]")
    queries.add_argument("--explain", choices=["none", "slowest", "all"], default="none")
    arriving = sub.add_parser("live")
    arriving.add_argument("--workspace", type=int, required=True)
    arriving.add_argument("--seconds", type=float, required=True)
    arriving.add_argument("--rate", type=float, required=True)
    args = parser.parse_args()
    if args.command == "explain":
        explain(args.responses, args.customers)
        return
    _django()
    if args.command == "seed":
        answer = seed()
    elif args.command == "cells":
        answer = cells_vs_raw(args.workspace, args.since, args.until)
    elif args.command == "live":
        answer = live(args.workspace, args.seconds, args.rate)
    else:
        paths = [(label, path) for label, path in json.loads(args.paths)]
        answer = capture(paths, args.key, args.cookie, args.explain)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
