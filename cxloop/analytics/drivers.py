"""Key drivers: which reasons (or attribute answers) explain the score, by Johnson's relative
weights (``docs/drivers-and-planner.md``).

Each predictor is an indicator per response: 1 when the respondent ticked the option, or when
the case the response opened carries the reason code (a ``ReasonCode`` whose code equals an
option code is the same reason), else 0. The score is regressed on all predictors at once;
Johnson's method splits the model's R² among them even when they are correlated:

* R = correlation matrix of the predictors, r = their correlations with the score;
* R = V·D·Vᵀ (eigen-decomposition), Λ = V·√D·Vᵀ (the correlations of the predictors with
  their closest orthogonal counterparts Z);
* β = Λ⁻¹·r (the score regressed on Z), R² = Σ β_k²;
* ε_j = Σ_k Λ_jk²·β_k², which sum to R²; the share of driver j is 100·ε_j / R².

Collinear predictors (the options of one single-choice question always add up to 1) make R
singular: its zero eigenvalues are left out of Λ⁻¹ (a pseudo-inverse), so β, R² and the
weights stay those of the least-squares fit.

``relative_weights`` is the pure computation (numpy); ``key_drivers`` reads the responses.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from django.db.models import Count
from django.db.models.fields.json import KeyTransform
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from cxloop.accounts.models import Workspace
from cxloop.surveys.models import Response, Survey

from . import reasons, rollups
from .queries import _midnight, _whole_days

__all__ = [
    "KINDS",
    "MIN_N",
    "Driver",
    "DriversResult",
    "key_drivers",
    "readout",
    "relative_weights",
]

log = logging.getLogger(__name__)

# Fewer scored responses than this and no drivers are computed.
MIN_N = 50
# Eigenvalues below this (relative to the largest) count as 0: collinear predictors.
_EIGEN_TOL = 1e-10
Kind = Literal["reasons", "attributes"]
# reasons: options of multiple-choice questions and the reason codes of cases;
# attributes: options of single-choice questions (one indicator per option).
KINDS: tuple[str, ...] = ("reasons", "attributes")


# --------------------------------------------------------------------------- the maths


def relative_weights(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """(ε, R²): Johnson's relative weights of the columns of ``x`` for ``y``, and the R² of
    the least-squares fit of ``y`` on ``x`` with an intercept. ε sums to R².

    ``weights``: how many responses each row stands for (``key_drivers`` reads one row per
    distinct answer pattern and score); the same as repeating each row that many times.
    Every column of ``x`` and ``y`` must vary (``ValueError`` otherwise). Collinear columns
    are allowed: the pseudo-inverse gives the least-squares fit and they share its R².
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError("x must be n x p and y of length n")
    if x.shape[1] == 0:
        raise ValueError("no predictors")
    w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != y.shape or np.any(w < 0):
        raise ValueError("weights must be n counts >= 0")
    n = float(w.sum())
    if n < 3:
        raise ValueError("need at least three observations")
    mx = (w @ x) / n
    my = float(w @ y) / n
    sx = np.sqrt((w @ (x - mx) ** 2) / n)
    sy = float(np.sqrt((w @ (y - my) ** 2) / n))
    if np.any(sx == 0) or sy == 0:
        raise ValueError("every predictor and the outcome must vary")
    zx = (x - mx) / sx
    zy = (y - my) / sy
    rxx = (zx * w[:, None]).T @ zx / n
    rxy = (zx * w[:, None]).T @ zy / n
    eigenvalues, vectors = np.linalg.eigh(rxx)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    keep = eigenvalues > _EIGEN_TOL * max(float(eigenvalues.max()), 1.0)
    root = np.sqrt(eigenvalues)
    lam = vectors @ np.diag(root) @ vectors.T
    inverse_root = np.where(keep, 1.0 / np.where(keep, root, 1.0), 0.0)
    lam_pinv = vectors @ np.diag(inverse_root) @ vectors.T
    beta = lam_pinv @ rxy
    epsilon = (lam**2) @ (beta**2)
    r2 = float(np.sum(beta**2))
    return epsilon, min(max(r2, 0.0), 1.0)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Driver:
    code: str
    label: str
    weight: float  # ε: the part of R² this driver accounts for
    share: float  # 100·ε / R²
    n_with: int  # responses citing it
    mean_with: float
    mean_without: float
    effect: float  # mean_with - mean_without, score points
    sign: int  # +1 cited by happier customers, -1 by unhappier, 0 no difference
    readout: str


@dataclass(frozen=True)
class DriversResult:
    n: int
    kind: str
    r2: float | None
    drivers: list[Driver]
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (code, label), no variance
    messages: list[str] = field(default_factory=list)
    min_n: int = MIN_N
    summary: str = ""
    scale: str = "nps"

    @property
    def enough(self) -> bool:
        return self.r2 is not None


def readout(label: str, share: float, effect: float) -> str:
    """ "Waiting time explains 41% of the explained variation in scores; customers who cite it
    score 3.2 points lower on average." """
    head = _("%(driver)s explains %(share)s%% of the explained variation in scores") % {
        "driver": label,
        "share": f"{share:.0f}",
    }
    points = f"{abs(effect):.1f}"
    if round(effect, 1) < 0:
        tail = _("customers who cite it score %(points)s points lower on average") % {
            "points": points
        }
    elif round(effect, 1) > 0:
        tail = _("customers who cite it score %(points)s points higher on average") % {
            "points": points
        }
    else:
        tail = _("customers who cite it score the same as the others on average")
    return f"{head}; {tail}."


def compute(
    matrix: np.ndarray,
    scores: np.ndarray,
    predictors: Sequence[tuple[str, str]],
    *,
    kind: str = "reasons",
    min_n: int = MIN_N,
    scale: str = "nps",
    counts: np.ndarray | None = None,
) -> DriversResult:
    """Drivers from an n x p 0/1 ``matrix`` and the ``scores``; ``predictors`` are the
    (code, label) of the columns. Columns without variance are dropped with a message.
    ``counts``: how many responses each row stands for (default: one each)."""
    w = np.ones(scores.shape[0]) if counts is None else np.asarray(counts, dtype=float)
    present = w > 0
    matrix, scores, w = matrix[present], scores[present], w[present]
    n = round(float(w.sum()))
    messages: list[str] = []
    if n < max(min_n, 3):
        messages.append(
            _("Only %(n)s scored responses: key drivers need at least %(min)s.")
            % {"n": n, "min": min_n}
        )
        return DriversResult(n, kind, None, [], messages=messages, min_n=min_n, scale=scale)
    # A column varies when its rows (all of which stand for answers) do not all agree.
    if matrix.shape[1] and matrix.shape[0]:
        varies = matrix.max(axis=0) != matrix.min(axis=0)
    else:
        varies = np.zeros(matrix.shape[1], dtype=bool)
    dropped = [p for p, v in zip(predictors, varies, strict=True) if not v]
    kept = [p for p, v in zip(predictors, varies, strict=True) if v]
    if dropped:
        messages.append(
            _("Left out because every response or none cites them: %(names)s.")
            % {"names": ", ".join(label for _code, label in dropped)}
        )
    if not kept:
        messages.append(_("No reason or answer varies between responses: nothing to weigh."))
        return DriversResult(n, kind, None, [], dropped, messages, min_n, scale=scale)
    if float(scores.max()) == float(scores.min()):
        messages.append(_("Every response has the same score: there is no variation to explain."))
        return DriversResult(n, kind, None, [], dropped, messages, min_n, scale=scale)
    x = matrix[:, varies].astype(float)
    weights, r2 = relative_weights(x, scores, w)
    drivers = []
    for j, (code, label) in enumerate(kept):
        cited = x[:, j] > 0
        n_with = float(w[cited].sum())
        mean_with = float(w[cited] @ scores[cited]) / n_with
        mean_without = float(w[~cited] @ scores[~cited]) / float(w[~cited].sum())
        effect = mean_with - mean_without
        share = 100.0 * float(weights[j]) / r2 if r2 > 0 else 0.0
        drivers.append(
            Driver(
                code=code,
                label=label,
                weight=float(weights[j]),
                share=share,
                n_with=round(n_with),
                mean_with=mean_with,
                mean_without=mean_without,
                effect=effect,
                sign=int(np.sign(round(effect, 6))),
                readout=readout(label, share, effect),
            )
        )
    drivers.sort(key=lambda d: (-d.weight, d.code))
    summary = _(
        "Together these drivers explain %(r2)s%% of the variation in scores (R² = %(value)s)."
    ) % {"r2": f"{100 * r2:.0f}", "value": f"{r2:.2f}"}
    return DriversResult(n, kind, r2, drivers, dropped, messages, min_n, summary, scale)


# --------------------------------------------------------------------------- the data


def _text(texts: dict[str, str], language: str, default: str) -> str:
    return texts.get(language) or texts.get(default) or next(iter(texts.values()), "")


def _choice_questions(survey: Survey, kind: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(question codes, [(option code, label)]) of the survey's choice questions of ``kind``."""
    from cxloop.surveys.render import definition_of

    try:
        definition = definition_of(survey)
    except Exception:  # an invalid definition has no options to weigh
        return [], []
    wanted = "multiple" if kind == "reasons" else "single"
    language = (get_language() or definition.default_language)[:2]
    questions: list[str] = []
    options: list[tuple[str, str]] = []
    for question in definition.questions:
        if question.type != wanted:
            continue
        questions.append(question.code)
        for option in question.options:
            label = _text(dict(option.text), language, definition.default_language)
            options.append((option.code, label or option.code))
    return questions, options


def _score_scale(surveys: Sequence[Survey]) -> str:
    from cxloop.surveys.render import definition_of

    types = set()
    for survey in surveys:
        try:
            types.add(definition_of(survey).score_question.type)
        except Exception:  # an invalid definition has no score question
            log.debug("drivers_no_score_question survey=%s", survey.pk)
    return types.pop() if len(types) == 1 else "nps"


def key_drivers(
    workspace: Workspace,
    surveys: Sequence[Survey],
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    kind: str = "reasons",
    min_n: int = MIN_N,
    cells: bool = True,
) -> DriversResult:
    """The drivers of the score of ``surveys`` (this workspace's) answered in [since, until).

    Test answers and answers without a score are left out. ``kind="reasons"``: the options of
    multiple-choice questions and the reason codes on the responses' cases, merged by code;
    ``kind="attributes"``: the options of single-choice questions. ``cells=False`` reads
    the raw answers only (the same numbers; for tests and comparisons).
    """
    from cxloop.cases.models import Case, ReasonCode
    from cxloop.cases.services import chosen_options

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    surveys = [s for s in surveys if s.workspace_id == workspace.pk]
    labels: dict[str, str] = {}
    questions: dict[int, list[str]] = {}
    for survey in surveys:
        codes, options = _choice_questions(survey, kind)
        questions[survey.pk] = codes
        for code, label in options:
            labels.setdefault(code, label)
    if kind == "reasons":
        for reason in ReasonCode.objects.filter(workspace=workspace):
            # A reason code with an option's code is that option; its taxonomy label wins.
            labels[reason.code] = reason.label()
    index = {code: j for j, code in enumerate(labels)}
    patterns: dict[tuple[float, tuple[int, ...]], int] = defaultdict(int)

    def pattern(survey_id: int, answers: dict[str, Any], extra: set[str]) -> tuple[int, ...]:
        chosen = chosen_options(
            {q: answers[q] for q in questions.get(survey_id, ()) if answers.get(q) is not None}
        )
        return tuple(sorted({index[c] for c in chosen | extra if c in index}))

    def add_raw(since: dt.datetime | None, until: dt.datetime | None) -> None:
        """Count the patterns of the raw answers in [since, until)."""
        rows = Response.objects.filter(
            workspace=workspace,
            survey__in=[s.pk for s in surveys],
            is_test=False,
            score__isnull=False,
        )
        if since is not None:
            rows = rows.filter(answered_at__gte=since)
        if until is not None:
            rows = rows.filter(answered_at__lt=until)
        coded: dict[int, set[str]] = defaultdict(set)
        with_reasons = Case.objects.filter(
            workspace=workspace, response__in=rows.values("pk"), reasons__isnull=False
        )
        if kind == "reasons":
            for response_id, code in with_reasons.values_list("response_id", "reasons__code"):
                coded[response_id].add(code)
        # One row per distinct (survey, score, answers to the choice questions), counted by
        # the database; responses whose case carries reason codes are read one by one.
        keys = sorted({code for codes in questions.values() for code in codes})
        columns = {f"q{i}": KeyTransform(code, "answers") for i, code in enumerate(keys)}
        grouped = rows.values("survey_id", "score", **columns).annotate(n=Count("id")).order_by()
        for row in grouped:
            answers = {code: row[f"q{i}"] for i, code in enumerate(keys)}
            key = (float(row["score"] or 0), pattern(row["survey_id"], answers, set()))
            patterns[key] += row["n"]
        if coded:
            cited = rows.filter(pk__in=with_reasons.values("response_id")).values_list(
                "pk", "survey_id", "score", "answers"
            )
            for pk, survey_id, score, answers in cited.iterator(chunk_size=5000):
                answers = answers or {}
                plain = (float(score or 0), pattern(survey_id, answers, set()))
                patterns[plain] -= 1
                patterns[(float(score or 0), pattern(survey_id, answers, coded[pk]))] += 1

    def add_cells(first: dt.date | None, last: dt.date | None, skip: list[dt.date]) -> None:
        """Count the patterns of the reason cells of the whole local days [first, last) but
        ``skip``."""
        for survey_id, score, tokens, total in reasons.patterns(
            [s.pk for s in surveys], first, last, skip
        ):
            asked = set(questions.get(survey_id, ()))
            chosen = {
                token.code
                for token in reasons.parse(tokens)
                if (token.source == "o" and token.question in asked)
                or (token.source == "c" and kind == "reasons")
            }
            hit = tuple(sorted({index[c] for c in chosen if c in index}))
            patterns[(float(score), hit)] += total

    # The reason cells (NPS surveys only, whole local days, when current) hold the counts per
    # (survey, day, score, tokens): summed in SQL, a few hundred rows a period instead of
    # every answer; the parts of since/until that are not whole days are read raw.
    zone = rollups.tz_of(workspace)
    usable = bool(surveys) and all(rollups.is_nps(s) for s in surveys)
    first, last = _whole_days(since, until, zone)
    if (
        not cells
        or not usable
        or (first is not None and last is not None and first >= last)
        or not (rollups.prepare(workspace) or rollups.is_built(workspace))
    ):
        add_raw(since, until)
    else:
        # Days whose reason cells are not current yet (the heartbeat recomputes them): raw.
        dirty = reasons.dirty_days([s.pk for s in surveys], first, last)
        add_cells(first, last, dirty)
        for start, end in reasons.day_ranges(dirty, zone):
            add_raw(start, end)
        if first is not None and since is not None and _midnight(first, zone) > since:
            add_raw(since, _midnight(first, zone))
        if last is not None and until is not None and _midnight(last, zone) < until:
            add_raw(_midnight(last, zone), until)
    found = [(key, n) for key, n in sorted(patterns.items()) if n > 0]
    matrix = np.zeros((len(found), len(index)), dtype=np.int8)
    for i, ((_score, hit), _n) in enumerate(found):
        if hit:
            matrix[i, list(hit)] = 1
    predictors = [(code, labels[code]) for code in index]
    return compute(
        matrix,
        np.asarray([score for (score, _hit), _n in found], dtype=float),
        predictors,
        kind=kind,
        min_n=min_n,
        scale=_score_scale(surveys),
        counts=np.asarray([n for _key, n in found], dtype=float),
    )


def payload(result: DriversResult) -> dict[str, Any]:
    """The API's JSON."""
    return {
        "n": result.n,
        "kind": result.kind,
        "min_n": result.min_n,
        "method": "johnson-relative-weights",
        "r2": result.r2,
        "summary": result.summary,
        "messages": result.messages,
        "dropped": [{"code": code, "label": label} for code, label in result.dropped],
        "drivers": [
            {
                "code": d.code,
                "label": d.label,
                "weight": d.weight,
                "share": d.share,
                "n_with": d.n_with,
                "mean_with": d.mean_with,
                "mean_without": d.mean_without,
                "effect": d.effect,
                "sign": d.sign,
                "readout": d.readout,
            }
            for d in result.drivers
        ],
    }
