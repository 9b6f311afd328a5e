"""Initiatives: a named change with a date and a scope, and what happened around it.

``docs/initiatives.md`` has the definitions with an example. In short:

* **windows**: ``days`` whole local days before the date, ``[date - days, date)``, and as many
  from it, ``[date, date + days)``; ``days`` is the window asked for (14, 30, 60 or 90) cut so
  that the "after" window ends by today's midnight (today is not over, so it never counts),
  and both windows always have the same length. An initiative dated today or later has no
  "after" yet (``days`` = 0).
* **scope**: the initiative's branches and products (none: everywhere) become the filters of
  ``queries.NpsQuery`` (``branch``, ``product``; both named: answers about one of the branches
  *and* one of the products); its survey, or every NPS survey of the workspace.
* **NPS** before and after with their adjusted-Wald intervals; the change is judged by the
  two-sided adjusted-Wald z-test of ``stats.nps_difference`` (after minus before) at
  ``ALPHA``: ``improved``, ``worsened`` or ``no_change``; ``insufficient_data`` when either
  window holds fewer than ``stats.MIN_EFFECT_N`` answers, ``not_yet`` when there is no
  "after" window.
* **reasons**: the share of detractors citing each reason before and after, as the pain map
  counts them (``pain.pain_map``: the call-back's reason codes and the ticked options, once
  per detractor); the ``TOP_REASONS`` most cited over both windows, each with a two-sided
  pooled two-proportion test (``stats.two_proportions``) and its Benjamini-Hochberg q-value
  among the reasons tested, since several reasons are tested at once; in the initiative's
  scope (branches and products), like the NPS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cxloop.accounts.models import Workspace
from cxloop.surveys.models import Survey

from . import rollups
from .models import Initiative
from .pain import PainMap, PainQuery, pain_map
from .queries import NpsQuery, nps_many
from .stats import (
    MIN_EFFECT_N,
    NpsStats,
    benjamini_hochberg,
    nps_difference,
    nps_interval,
    two_proportions,
)

__all__ = [
    "ALPHA",
    "DEFAULT_WINDOW",
    "TOP_REASONS",
    "WINDOWS",
    "Effect",
    "ReasonChange",
    "Windows",
    "chart_annotations",
    "effect",
    "effects",
    "scope_filters",
    "windows",
]

WINDOWS = (14, 30, 60, 90)
DEFAULT_WINDOW = 30
ALPHA = 0.05
CONFIDENCE = 0.95
TOP_REASONS = 8

NpsVerdict = Literal["improved", "worsened", "no_change", "insufficient_data", "not_yet"]
ReasonVerdict = Literal["less", "more", "no_change", "untested"]


@dataclass(frozen=True)
class Windows:
    """Local days: before = [before_since, date), after = [date, after_until)."""

    date: dt.date
    days: int  # the length of each window; 0: no "after" yet
    requested: int

    @property
    def before_since(self) -> dt.date:
        return self.date - dt.timedelta(days=self.days)

    @property
    def after_until(self) -> dt.date:
        """Exclusive."""
        return self.date + dt.timedelta(days=self.days)

    @property
    def last_day(self) -> dt.date:
        """The last day of the "after" window (inclusive), for the page."""
        return self.after_until - dt.timedelta(days=1)

    @property
    def cut(self) -> bool:
        """True when today shortened the windows."""
        return self.days < self.requested


def windows(date: dt.date, requested: int, today: dt.date) -> Windows:
    """Equal windows of ``requested`` days around ``date``, shortened so that the "after" one
    ends by today's midnight."""
    if requested < 1:
        raise ValueError(f"a window has at least one day, got {requested}")
    days = max(0, min(requested, (today - date).days))
    return Windows(date=date, days=days, requested=requested)


@dataclass(frozen=True)
class ReasonChange:
    code: str
    label: str
    before_citing: int
    before_detractors: int
    after_citing: int
    after_detractors: int
    before_share: float | None  # 0..1; None: no detractors
    after_share: float | None
    diff_points: float | None  # 100 * (after - before)
    z: float | None
    p_value: float | None  # two-sided; None: untested (a window without detractors)
    q_value: float | None  # Benjamini-Hochberg among the reasons tested
    verdict: ReasonVerdict


@dataclass(frozen=True)
class Effect:
    windows: Windows
    before: NpsStats
    after: NpsStats
    diff: float | None  # after - before, NPS points
    z: float
    p_value: float  # two-sided
    verdict: NpsVerdict
    reasons: list[ReasonChange]
    before_detractors: int
    after_detractors: int


def scope_filters(initiative: Initiative) -> dict[str, list[str]]:
    """The ``NpsQuery`` filters of the initiative's scope: branch and product codes."""
    filters: dict[str, list[str]] = {}
    # ``.all()``: the list's ``prefetch_related`` serves them
    branches = sorted(b.code for b in initiative.branches.all())
    products = sorted(p.code for p in initiative.products.all())
    if branches:
        filters["branch"] = branches
    if products:
        filters["product"] = products
    return filters


def _midnight(day: dt.date, zone: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone)


def _verdict(before: NpsStats, after: NpsStats, diff: float | None, p: float) -> NpsVerdict:
    if before.n < MIN_EFFECT_N or after.n < MIN_EFFECT_N or diff is None:
        return "insufficient_data"
    if p >= ALPHA:
        return "no_change"
    return "improved" if diff > 0 else "worsened"


def _reason_changes(before: PainMap, after: PainMap, top: int) -> list[ReasonChange]:
    labels: dict[str, str] = {}
    citing_before = {r.code: r.citing for r in before.reasons}
    citing_after = {r.code: r.citing for r in after.reasons}
    for reason in (*after.reasons, *before.reasons):
        labels[reason.code] = reason.label
    ranked = sorted(
        labels,
        key=lambda code: (
            -(citing_before.get(code, 0) + citing_after.get(code, 0)),
            labels[code].lower(),
            code,
        ),
    )[:top]
    nb, na = before.detractors, after.detractors
    tests = {}
    if nb and na:
        for code in ranked:
            tests[code] = two_proportions(
                citing_after.get(code, 0), na, citing_before.get(code, 0), nb, "two-sided"
            )
    tested = list(tests)
    q_values = dict(
        zip(tested, benjamini_hochberg([tests[c].p_value for c in tested], ALPHA), strict=True)
    )
    rows = []
    for code in ranked:
        xb, xa = citing_before.get(code, 0), citing_after.get(code, 0)
        share_b = xb / nb if nb else None
        share_a = xa / na if na else None
        test = tests.get(code)
        q = q_values.get(code)
        verdict: ReasonVerdict
        if test is None or q is None:
            verdict = "untested"
        elif q > ALPHA:
            verdict = "no_change"
        else:
            verdict = "less" if test.diff < 0 else "more"
        rows.append(
            ReasonChange(
                code=code,
                label=labels[code],
                before_citing=xb,
                before_detractors=nb,
                after_citing=xa,
                after_detractors=na,
                before_share=share_b,
                after_share=share_a,
                diff_points=(
                    None if share_a is None or share_b is None else 100.0 * (share_a - share_b)
                ),
                z=None if test is None else test.z,
                p_value=None if test is None else test.p_value,
                q_value=q,
                verdict=verdict,
            )
        )
    return rows


def _nps_queries(
    initiative: Initiative, span: Windows, filters: dict[str, list[str]]
) -> list[NpsQuery | None]:
    """The before and after questions (None: an empty window)."""
    zone = rollups.tz_of(initiative.workspace)
    survey = initiative.survey if initiative.survey_id is not None else None
    return [
        None
        if since >= until
        else NpsQuery(
            workspace=initiative.workspace,
            survey=survey,
            since=_midnight(since, zone),
            until=_midnight(until, zone),
            filters=filters,
            confidence=CONFIDENCE,
        )
        for since, until in ((span.before_since, span.date), (span.date, span.after_until))
    ]


def effects(
    initiatives: Sequence[Initiative], *, today: dt.date, window: int = DEFAULT_WINDOW
) -> list[Effect]:
    """``effect`` of each initiative (of one workspace) without the reasons, their NPS asked
    together (``queries.nps_many``: one look at the surveys and the cells for the list)."""
    spans = [windows(i.date, window, today) for i in initiatives]
    filters = [scope_filters(i) for i in initiatives]
    asked = [
        _nps_queries(i, span, f) for i, span, f in zip(initiatives, spans, filters, strict=True)
    ]
    answered = iter(nps_many([q for pair in asked for q in pair if q is not None]))
    empty = nps_interval(0, 0, 0, CONFIDENCE)
    return [
        _effect(
            initiative, span, f, *(empty if q is None else next(answered).overall for q in pair)
        )
        for initiative, span, f, pair in zip(initiatives, spans, filters, asked, strict=True)
    ]


def effect(
    initiative: Initiative,
    *,
    today: dt.date,
    window: int = DEFAULT_WINDOW,
    reasons: bool = True,
    top: int = TOP_REASONS,
) -> Effect:
    """The initiative's before/after NPS and (with ``reasons``) reason shares."""
    span = windows(initiative.date, window, today)
    filters = scope_filters(initiative)
    pair = _nps_queries(initiative, span, filters)
    answered = iter(nps_many([q for q in pair if q is not None]))
    empty = nps_interval(0, 0, 0, CONFIDENCE)
    before, after = (empty if q is None else next(answered).overall for q in pair)
    return _effect(initiative, span, filters, before, after, reasons=reasons, top=top)


def _effect(
    initiative: Initiative,
    span: Windows,
    filters: dict[str, list[str]],
    before: NpsStats,
    after: NpsStats,
    *,
    reasons: bool = False,
    top: int = TOP_REASONS,
) -> Effect:
    workspace = initiative.workspace
    zone = rollups.tz_of(workspace)
    survey = initiative.survey if initiative.survey_id is not None else None
    difference = nps_difference(after, before)
    verdict: NpsVerdict = (
        "not_yet"
        if span.days == 0
        else _verdict(before, after, difference.diff, difference.p_two_sided)
    )

    changes: list[ReasonChange] = []
    before_det, after_det = before.detractors, after.detractors
    if reasons and span.days > 0:
        pain_filters = {k: filters[k] for k in ("branch", "product") if k in filters}

        def reason_map(since: dt.date, until: dt.date) -> PainMap:
            return pain_map(
                PainQuery(
                    workspace=workspace,
                    survey=survey,
                    since=_midnight(since, zone),
                    until=_midnight(until, zone),
                    filters=pain_filters,
                    confidence=CONFIDENCE,
                    extrapolate=False,
                )
            )

        before_map = reason_map(span.before_since, span.date)
        after_map = reason_map(span.date, span.after_until)
        before_det, after_det = before_map.detractors, after_map.detractors
        changes = _reason_changes(before_map, after_map, top)

    return Effect(
        windows=span,
        before=before,
        after=after,
        diff=difference.diff,
        z=difference.z,
        p_value=difference.p_two_sided,
        verdict=verdict,
        reasons=changes,
        before_detractors=before_det,
        after_detractors=after_det,
    )


# --------------------------------------------------------------------------- the dashboard


def in_period(
    workspace: Workspace,
    since: dt.date,
    until: dt.date,
    *,
    branches: Sequence[str] = (),
    regions: Sequence[str] = (),
    survey: Survey | None = None,
) -> list[Initiative]:
    """The initiatives dated in [since, until] (inclusive local days) whose scope meets a
    chart's: an initiative naming branches shows when one of them is among ``branches`` / in
    ``regions`` (no branches: everywhere, always shown); one tied to a survey shows unless the
    chart shows another survey. By date; branches, products and survey prefetched."""
    found = (
        Initiative.objects.filter(workspace=workspace, date__gte=since, date__lte=until)
        .select_related("survey")
        .prefetch_related("branches__region", "products")
        .order_by("date", "pk")
    )
    wanted_branches, wanted_regions = set(branches), set(regions)
    result = []
    for initiative in found:
        if survey is not None and initiative.survey_id not in (None, survey.pk):
            continue
        own = [(b.code, b.region.code) for b in initiative.branches.all()]
        if own and not any(
            (not wanted_branches or code in wanted_branches)
            and (not wanted_regions or region in wanted_regions)
            for code, region in own
        ):
            continue
        result.append(initiative)
    return result


def chart_annotations(
    workspace: Workspace,
    since: dt.date,
    until: dt.date,
    *,
    branches: Sequence[str] = (),
    regions: Sequence[str] = (),
    survey: Survey | None = None,
) -> list[tuple[dt.date, str]]:
    """(date, name) of the initiatives ``in_period`` (the trend chart's marks)."""
    return [
        (initiative.date, initiative.name)
        for initiative in in_period(
            workspace, since, until, branches=branches, regions=regions, survey=survey
        )
    ]
