# ruff: noqa: RUF001 - Russian, Romanian and Ukrainian comments on purpose
"""Recoding a workspace's comments in the product, on PostgreSQL: the database path of the text
pipeline (``cxloop.text.services``), next to ``benchmarks/text.py``'s pure-model figures.

``python -m benchmarks --suite text`` runs it after the model benchmark; alone:
``python -m benchmarks.text_recode [--comments 20000]``.

1. A throw-away PostgreSQL database is migrated; a subprocess (Django) seeds a workspace with
   an NPS survey, reason codes and N comments in Russian, Romanian, English and Ukrainian
   (inserted as rows, as an import would leave them), each with a score; it trains the
   sentiment model from the scores (3,000 of them) and the reasons model from call-back-style
   labels (2,000), with and without embeddings.
2. For each model kind: every comment is marked to be coded again (``services.recode``, as after
   a new version), then W worker processes (W = the machine's cores) each run
   ``services.analyse_pending`` until nothing waits — the same function the Celery task
   ``text.recode`` runs, sharing the work through ``SELECT … FOR UPDATE SKIP LOCKED``. The wall
   time gives comments per second, per second per core, and the projected time for 1,000,000
   comments. With embeddings only the first 2,000 comments are recoded (they are far slower).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from .backends import Postgres
from .server import ROOT

RECODE_TARGET_S = 3600.0  # 1,000,000 comments with the linear models
TRAIN_TEXTS = 3000  # comments with a weak sentiment label (score 0-6 or 9-10)
EMBEDDED = 2000  # comments recoded with the embedding models (they are ~50x slower)
SLUG = "bench-text"

PHRASES = {
    "waiting": [
        "waited {n} minutes in the queue",
        "ждал в очереди {n} минут",
        "am așteptat {n} minute la coadă",
        "чекав у черзі {n} хвилин",
    ],
    "app": [
        "the app crashes when I pay",
        "приложение зависает при оплате",
        "aplicația se blochează la plată",
        "застосунок зависає під час оплати",
    ],
    "staff": [
        "the consultant was rude",
        "консультант нагрубил",
        "consultantul a fost nepoliticos",
        "консультант був грубим",
    ],
    "price": [
        "the tariff is too expensive",
        "тариф слишком дорогой",
        "tariful este prea scump",
        "тариф занадто дорогий",
    ],
}
PRAISE = [
    "fast and friendly, thank you",
    "быстро и вежливо, спасибо",
    "rapid și amabil, mulțumesc",
    "швидко і ввічливо, дякую",
]


@dataclass
class Run:
    kind: str
    comments: int
    workers: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.comments / self.seconds

    @property
    def million_s(self) -> float:
        return 1_000_000 / self.per_second


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the Django side (subprocesses) ---------------------------------------------------------


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cxloop.settings")
    import django

    django.setup()


def seed(comments: int) -> dict[str, Any]:
    """A workspace with ``comments`` comments (a quarter praise, the rest complaints of one or
    two reasons), ready to train."""
    _django()
    import random

    from cxloop.accounts.services import create_workspace
    from cxloop.cases.models import ReasonCode
    from cxloop.core import clock
    from cxloop.surveys.tests.factories import make_org, make_survey
    from cxloop.text.models import Comment, CommentReason, CommentSource, LabelSource

    rng = random.Random(7)
    workspace = create_workspace(SLUG, "Text benchmark", via="cli")
    make_org(workspace)
    survey = make_survey(workspace, "after-visit")
    codes = {
        code: ReasonCode.objects.create(workspace=workspace, code=code, labels={"en": code})
        for code in PHRASES
    }
    now = clock.now()
    rows: list[Any] = []
    labels: list[tuple[int, list[str]]] = []
    for i in range(comments):
        lang = rng.randrange(4)
        if rng.random() < 0.25:
            text, score, reasons = PRAISE[lang], rng.choice([9, 10]), []
        else:
            reasons = rng.sample(list(PHRASES), rng.choice([1, 1, 2]))
            text = ", ".join(PHRASES[r][lang].format(n=rng.randrange(10, 90)) for r in reasons)
            score = rng.randrange(0, 7)
        if i >= TRAIN_TEXTS:
            score = rng.choice([7, 8])  # passives: no weak sentiment label, training stays short
        rows.append(
            Comment(
                workspace=workspace,
                source=CommentSource.RESPONSE,
                survey=survey,
                score=score,
                text=f"{text} #{i}",
                written_at=now,
            )
        )
        labels.append((i, reasons))
    Comment.objects.bulk_create(rows, batch_size=5000)
    # The call-backs' reasons on the first 2,000 complaints: the reasons model's training data.
    links = [
        CommentReason(comment=rows[i], reason=codes[r], source=LabelSource.CALLBACK, confidence=1.0)
        for i, reasons in labels[:2000]
        for r in reasons
    ]
    CommentReason.objects.bulk_create(links, batch_size=5000)
    return {"workspace": workspace.pk, "comments": comments}


def train(workspace_id: int, embeddings: bool) -> dict[str, Any]:
    os.environ["TEXT_EMBEDDINGS"] = "1" if embeddings else "0"
    _django()
    from cxloop.accounts.models import Workspace
    from cxloop.text import services
    from cxloop.text.models import Task

    workspace = Workspace.objects.get(pk=workspace_id)
    out: dict[str, Any] = {}
    for task in (Task.SENTIMENT, Task.REASONS):
        started = time.perf_counter()
        version = services.train(workspace, task)
        out[task] = {
            "version": version.version,
            "seconds": time.perf_counter() - started,
            "macro_f1": version.metrics.get("macro_f1"),
            "embeddings": bool(version.features.get("embeddings")),
        }
    return out


def work(workspace_id: int) -> dict[str, Any]:
    """One worker: code what waits until nothing does."""
    _django()
    from cxloop.text import services

    done = 0
    started = time.perf_counter()
    while True:
        n = services.analyse_pending(workspace_id, limit=services.BATCH)
        if not n:
            break
        done += n
    return {"done": done, "seconds": time.perf_counter() - started}


def _python(backend: Postgres, *args: str, timeout: float = 1800) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.text_recode", *args],
        cwd=ROOT,
        env=backend.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"text_recode {args[0]} failed:\n{proc.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


def _recode(backend: Postgres, workspace_id: int, comments: int, workers: int) -> float:
    """Mark ``comments`` comments pending, then time W workers coding them all."""
    with backend.connect() as conn:
        conn.execute(
            "UPDATE text_comment SET analysed_at = NULL WHERE id IN (SELECT id FROM text_comment"
            " WHERE workspace_id = %s ORDER BY id LIMIT %s)",
            (workspace_id, comments),
        )
        conn.commit()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.text_recode", "work", str(workspace_id)],
            cwd=ROOT,
            env=backend.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    done = 0
    for proc in procs:
        out, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed:\n{err[-3000:]}")
        done += json.loads(out.strip().splitlines()[-1])["done"]
    seconds = time.perf_counter() - started
    if done != comments:
        raise RuntimeError(f"{done} comments coded, {comments} expected")
    return seconds


def bench(comments: int = 20_000, workers: int | None = None) -> list[Run]:
    from .surveys import cxloop

    workers = workers or os.cpu_count() or 1
    backend = Postgres()
    backend.create()
    runs: list[Run] = []
    try:
        cxloop(backend, "migrate", "--noinput")
        info = _python(backend, "seed", "--comments", str(comments))
        backend.analyze()
        for kind, embeddings in (("linear", False), ("embeddings", True)):
            trained = _python(
                backend, "train", str(info["workspace"]), "yes" if embeddings else "no"
            )
            log(f"text recode: trained ({kind}) {json.dumps(trained)}")
            count = min(comments, EMBEDDED) if embeddings else comments
            seconds = _recode(backend, info["workspace"], count, workers)
            runs.append(Run(kind, count, workers, seconds))
            log(f"text recode: {kind}: {count:,} comments in {seconds:.1f} s")
    finally:
        backend.destroy()
    return runs


def report(runs: list[Run], out: TextIO = sys.stdout) -> None:
    out.write("\nText pipeline in the product: recoding comments on PostgreSQL\n")
    for run in runs:
        per_core = run.per_second / run.workers
        verdict = ""
        if run.kind == "linear":
            ok = run.million_s < RECODE_TARGET_S
            verdict = f"  target < {RECODE_TARGET_S / 60:.0f} min: {'OK' if ok else 'MISSED'}"
        out.write(
            f"  {run.kind:<11} {run.comments:,} comments, {run.workers} workers: "
            f"{run.seconds:.1f} s = {run.per_second:,.0f}/s ({per_core:,.0f}/s per core); "
            f"1,000,000 comments in {run.million_s / 60:.1f} min{verdict}\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.text_recode")
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("seed")
    s.add_argument("--comments", type=int, default=20_000)
    t = sub.add_parser("train")
    t.add_argument("workspace", type=int)
    t.add_argument("embeddings")
    w = sub.add_parser("work")
    w.add_argument("workspace", type=int)
    r = sub.add_parser("run")
    r.add_argument("--comments", type=int, default=20_000)
    args = parser.parse_args()
    if args.command == "seed":
        print(json.dumps(seed(args.comments)))
    elif args.command == "train":
        print(json.dumps(train(args.workspace, args.embeddings == "yes")))
    elif args.command == "work":
        print(json.dumps(work(args.workspace)))
    else:
        report(bench(getattr(args, "comments", 20_000)))


if __name__ == "__main__":
    main()
