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
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from cxloop.accounts.models import Workspace
from cxloop.surveys.models import Response, Survey

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


def relative_weights(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(ε, R²): Johnson's relative weights of the columns of ``x`` for ``y``, and the R² of
    the least-squares fit of ``y`` on ``x`` with an intercept. ε sums to R².

    Every column of ``x`` and ``y`` must vary (``ValueError`` otherwise). Collinear columns
    are allowed: the pseudo-inverse gives the least-squares fit and they share its R².
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError("x must be n x p and y of length n")
    if x.shape[1] == 0:
        raise ValueError("no predictors")
    if x.shape[0] < 3:
        raise ValueError("need at least three observations")
    sx = x.std(axis=0)
    sy = y.std()
    if np.any(sx == 0) or sy == 0:
        raise ValueError("every predictor and the outcome must vary")
    zx = (x - x.mean(axis=0)) / sx
    zy = (y - y.mean()) / sy
    n = x.shape[0]
    rxx = zx.T @ zx / n
    rxy = zx.T @ zy / n
    eigenvalues, vectors = np.linalg.eigh(rxx)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    keep = eigenvalues > _EIGEN_TOL * max(float(eigenvalues.max()), 1.0)
    root = np.sqrt(eigenvalues)
    lam = vectors @ np.diag(root) @ vectors.T
    inverse_root = np.where(keep, 1.0 / np.where(keep, root, 1.0), 0.0)
    lam_pinv = vectors @ np.diag(inverse_root) @ vectors.T
    beta = lam_pinv @ rxy
    weights = (lam**2) @ (beta**2)
    r2 = float(np.sum(beta**2))
    return weights, min(max(r2, 0.0), 1.0)


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
) -> DriversResult:
    """Drivers from an n x p 0/1 ``matrix`` and the ``scores``; ``predictors`` are the
    (code, label) of the columns. Columns without variance are dropped with a message."""
    n = int(scores.shape[0])
    messages: list[str] = []
    if n < max(min_n, 3):
        messages.append(
            _("Only %(n)s scored responses: key drivers need at least %(min)s.")
            % {"n": n, "min": min_n}
        )
        return DriversResult(n, kind, None, [], messages=messages, min_n=min_n, scale=scale)
    varies = matrix.std(axis=0) > 0 if matrix.shape[1] else np.zeros(0, dtype=bool)
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
    if float(scores.std()) == 0.0:
        messages.append(_("Every response has the same score: there is no variation to explain."))
        return DriversResult(n, kind, None, [], dropped, messages, min_n, scale=scale)
    x = matrix[:, varies].astype(float)
    weights, r2 = relative_weights(x, scores)
    drivers = []
    for j, (code, label) in enumerate(kept):
        cited = x[:, j] > 0
        mean_with = float(scores[cited].mean())
        mean_without = float(scores[~cited].mean())
        effect = mean_with - mean_without
        share = 100.0 * float(weights[j]) / r2 if r2 > 0 else 0.0
        drivers.append(
            Driver(
                code=code,
                label=label,
                weight=float(weights[j]),
                share=share,
                n_with=int(cited.sum()),
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
) -> DriversResult:
    """The drivers of the score of ``surveys`` (this workspace's) answered in [since, until).

    Test answers and answers without a score are left out. ``kind="reasons"``: the options of
    multiple-choice questions and the reason codes on the responses' cases, merged by code;
    ``kind="attributes"``: the options of single-choice questions.
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
    if kind == "reasons":
        reason_codes = ReasonCode.objects.filter(workspace=workspace)
        for reason in reason_codes:
            # A reason code with an option's code is that option; its taxonomy label wins.
            labels[reason.code] = reason.label()
        pairs = Case.objects.filter(
            workspace=workspace, response__in=rows.values("pk"), reasons__isnull=False
        ).values_list("response_id", "reasons__code")
        for response_id, code in pairs:
            coded[response_id].add(code)
    index = {code: j for j, code in enumerate(labels)}
    scores: list[float] = []
    hits: list[list[int]] = []
    for pk, survey_id, score, answers in rows.values_list(
        "pk", "survey_id", "score", "answers"
    ).iterator(chunk_size=5000):
        answers = answers or {}
        chosen = chosen_options(
            {q: answers[q] for q in questions.get(survey_id, ()) if q in answers}
        )
        chosen |= coded.get(pk, set())
        scores.append(float(score or 0))
        hits.append([index[c] for c in chosen if c in index])
    matrix = np.zeros((len(scores), len(index)), dtype=np.int8)
    for i, columns in enumerate(hits):
        if columns:
            matrix[i, columns] = 1
    predictors = [(code, labels[code]) for code in index]
    return compute(
        matrix,
        np.asarray(scores, dtype=float),
        predictors,
        kind=kind,
        min_n=min_n,
        scale=_score_scale(surveys),
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
