"""``cxloop text train|classify``: train a text model from a labelled CSV file, and code a CSV
file of comments with it. The same ``cxloop.text.ml`` code as the product; no database.

    cxloop text train --task NAME --input labelled.csv --model DIR [--multilabel]
    cxloop text classify --model DIR --input comments.csv --output predictions.csv

Files are UTF-8 (a byte-order mark is fine) with a header row, comma-separated (a header
with no comma but a semicolon or tab switches to that). ``train`` reads the columns ``text``
and ``label`` (or ``category`` when there is no ``label``; with ``--multilabel``, labels
separated by ``|``); rows with an empty text or label are skipped and counted. ``classify``
writes every input row, its columns in their order, with ``predicted`` and ``confidence``
added (or replaced, where the input has them already); a row with an empty text gets an empty
``predicted`` and confidence 0. docs/text-models.md has the details.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cxloop.text.ml import Classifier, ModelError, TrainingError

BATCH = 2_000  # rows classified at a time: memory stays flat for any file size
LABEL_SEPARATOR = "|"
ADDED = ("predicted", "confidence")

csv.field_size_limit(2**24)  # long reviews: 16 MB a field, not csv's 128 KB


class Command(BaseCommand):
    help = "Train a text model from a labelled CSV file, or classify a CSV file of texts."
    requires_system_checks: list[str] = []  # no database, no checks: a plain file tool

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        train = sub.add_parser("train", help="Train a model and save it to a directory.")
        train.add_argument("--task", required=True, help="The task's name, e.g. sentiment.")
        train.add_argument("--input", required=True, type=Path, help="CSV with text,label.")
        train.add_argument("--model", required=True, type=Path, help="Directory to save to.")
        train.add_argument(
            "--multilabel", action="store_true", help="Several labels a text, separated by |."
        )
        train.add_argument(
            "--no-embeddings", action="store_true", help="TF-IDF features only (faster)."
        )
        train.add_argument("--folds", type=int, default=5, help="Cross-validation folds (5).")
        classify = sub.add_parser("classify", help="Add predicted and confidence columns.")
        classify.add_argument("--model", required=True, type=Path, help="A trained model.")
        classify.add_argument("--input", required=True, type=Path, help="CSV with a text column.")
        classify.add_argument("--output", required=True, type=Path, help="CSV to write.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "train":
            self.train(options)
        else:
            self.classify(options)

    def say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()

    # --- train ------------------------------------------------------------------------------

    def train(self, options: dict[str, Any]) -> None:
        started = time.perf_counter()
        directory: Path = options["model"]
        if options["folds"] < 2:
            raise CommandError("--folds must be 2 or more")
        created = not directory.exists()
        check_model_directory(directory)
        try:
            self._train(options, directory, started)
        except BaseException:
            if created:  # leave no empty directory behind
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise

    def _train(self, options: dict[str, Any], directory: Path, started: float) -> None:
        texts: list[str] = []
        targets: list[Any] = []
        skipped = 0
        with open_csv(options["input"]) as (header, rows):
            text_at = column(header, "text", options["input"])
            keys = [name.strip().lower() for name in header]
            label_name = "label" if "label" in keys or "category" not in keys else "category"
            label_at = column(header, label_name, options["input"], hint="label")
            for row in rows:
                text = field(row, text_at)
                label = field(row, label_at).strip()
                # Multi-label: an empty label is "none of them", a negative for every label.
                if not text.strip() or not (label or options["multilabel"]):
                    skipped += 1
                    continue
                texts.append(text)
                if options["multilabel"]:
                    targets.append([part for part in label.split(LABEL_SEPARATOR) if part.strip()])
                else:
                    targets.append(label)
        self.say(
            f"read {len(texts):,} labelled rows from {options['input']}"
            + (f" (skipped {skipped:,} with an empty text or label)" if skipped else "")
        )
        if not texts:
            raise CommandError(f"{options['input']}: no row has both a text and a label")
        try:
            model = Classifier.train(
                texts,
                targets,
                task=options["task"],
                multilabel=options["multilabel"],
                embeddings=False if options["no_embeddings"] else None,
                cv_folds=options["folds"],
                progress=lambda message: self.say(
                    f"  [{time.perf_counter() - started:5.0f} s] {message}"
                ),
            )
        except TrainingError as exc:
            raise CommandError(f"cannot train: {exc}") from None
        try:
            model.save(directory)
        except OSError as exc:
            raise CommandError(f"cannot save the model to {directory}: {exc.strerror}") from None
        metrics = model.metrics
        weakest = sorted(metrics["per_label"].items(), key=lambda item: item[1])[:5]
        self.say(
            f"labels: {len(model.labels)}; embeddings: {'yes' if model.embeddings else 'no'}; "
            f"cross-validated macro-F1 {metrics['macro_f1']:.4f} ({metrics['folds']} folds)"
        )
        self.say("weakest labels: " + ", ".join(f"{label} {f1:.2f}" for label, f1 in weakest))
        if metrics["untested_labels"]:
            self.say(
                f"{len(metrics['untested_labels'])} label(s) with a single example: learnt, "
                "not cross-validated"
            )
        self.say(f"model saved to {directory} in {time.perf_counter() - started:.0f} s")

    # --- classify ---------------------------------------------------------------------------

    def classify(self, options: dict[str, Any]) -> None:
        started = time.perf_counter()
        source: Path = options["input"]
        target: Path = options["output"]
        try:
            model = Classifier.load(options["model"])
        except ModelError as exc:
            raise CommandError(f"cannot load the model: {exc}") from None
        if target.exists() and source.exists() and target.resolve() == source.resolve():
            raise CommandError("--output is the input file: choose another path")
        if target.is_dir():
            raise CommandError(f"--output {target} is a directory")
        if not target.parent.is_dir():
            raise CommandError(f"--output: no such directory: {target.parent}")
        rows_done = empty = 0
        with open_csv(source) as (header, rows), written_aside(target) as out:
            text_at = column(header, "text", source)
            writer = csv.writer(out, lineterminator="\n")
            keys = [name.strip().lower() for name in header]
            places = [keys.index(name) if name in keys else None for name in ADDED]
            writer.writerow(
                [*header, *(n for n, at in zip(ADDED, places, strict=True) if at is None)]
            )
            for batch in batches(rows, BATCH):
                texts = [field(row, text_at) for row in batch]
                present = [i for i, text in enumerate(texts) if text.strip()]
                predictions = model.predict([texts[i] for i in present])
                found = dict(zip(present, predictions, strict=True))
                for i, row in enumerate(batch):
                    prediction = found.get(i)
                    if prediction is None:
                        added = ["", "0"]
                    elif model.multilabel:
                        added = [
                            LABEL_SEPARATOR.join(prediction.labels),
                            f"{prediction.confidence:.4f}",
                        ]
                    else:
                        added = [prediction.label, f"{prediction.confidence:.4f}"]
                    # Short rows are padded to the header; fields beyond it stay at the end.
                    line = row[: len(header)] + [""] * (len(header) - len(row))
                    for at, value in zip(places, added, strict=True):
                        if at is None:
                            line.append(value)
                        else:
                            line[at] = value  # the input's own predicted/confidence column
                    writer.writerow(line + row[len(header) :])
                rows_done += len(batch)
                empty += len(batch) - len(present)
                if rows_done % (BATCH * 25) == 0:
                    self.say(f"  {rows_done:,} rows")
        seconds = time.perf_counter() - started
        self.say(
            f"classified {rows_done:,} rows into {target} in {seconds:.1f} s"
            + (f"; {empty:,} with an empty text left unclassified" if empty else "")
        )


def check_model_directory(directory: Path) -> None:
    """Fail before training, not after: the directory must be creatable and writable, and
    must not hold anything but a model (retraining replaces that)."""
    if directory.exists() and not directory.is_dir():
        raise CommandError(f"--model {directory} is a file, not a directory")
    if directory.is_dir():
        others = {p.name for p in directory.iterdir()} - {"model.bin", "meta.json"}
        if others:
            raise CommandError(
                f"--model {directory} holds other files ({', '.join(sorted(others)[:3])}); "
                "choose an empty or new directory"
            )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise CommandError(f"--model {directory} is not writable: {exc.strerror}") from None


@contextmanager
def open_csv(path: Path) -> Iterator[tuple[list[str], Iterator[list[str]]]]:
    """The header row as it is and an iterator of the rows after it."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise CommandError(f"no such file: {path}") from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        try:
            first = handle.readline()
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text") from None
        if not first.strip():
            raise CommandError(f"{path} is empty: a header row (text,...) is needed")
        delimiter = "," if "," in first or not ({";", "\t"} & set(first)) else None
        if delimiter is None:
            delimiter = ";" if first.count(";") >= first.count("\t") else "\t"
        header = next(csv.reader([first], delimiter=delimiter))
        reader = csv.reader(handle, delimiter=delimiter)

        def rows() -> Iterator[list[str]]:
            try:
                for row in reader:
                    if row:  # blank lines
                        yield row
            except UnicodeDecodeError:
                raise CommandError(
                    f"{path} is not UTF-8 text (near line {reader.line_num + 1})"
                ) from None
            except csv.Error as exc:
                raise CommandError(f"{path}, line {reader.line_num + 1}: {exc}") from None

        yield header, rows()


def column(header: list[str], name: str, path: Path, hint: str | None = None) -> int:
    """Where the column ``name`` is; names match whatever their case and surrounding spaces."""
    keys = [key.strip().lower() for key in header]
    if name not in keys:
        raise CommandError(
            f"{path} has no {hint or name!r} column (found: {', '.join(header) or 'none'})"
        )
    return keys.index(name)


def field(row: list[str], at: int) -> str:
    return row[at] if at < len(row) else ""


def batches(rows: Iterator[list[str]], size: int) -> Iterator[list[list[str]]]:
    batch: list[list[str]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextmanager
def written_aside(target: Path) -> Iterator[IO[str]]:
    """A file that becomes ``target`` only when the block ends without an error, so that an
    interrupted run leaves no half-written output (and an older file stays as it was)."""
    try:
        fd, aside = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise CommandError(f"--output {target} is not writable: {exc.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(aside, 0o666 & ~umask)  # as a plainly created file would be, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(aside, target)
    except BaseException:
        Path(aside).unlink(missing_ok=True)
        raise
