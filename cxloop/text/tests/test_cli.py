"""``cxloop text train|classify``: the file contract other tools check, and a clear error
that loses nothing for each kind of bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

FIXTURES = Path(__file__).parent / "fixtures"
CXLOOP = Path(sys.executable).parent / "cxloop"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("text", *args, stdout=out)
    return out.getvalue()


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def sentiment_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models") / "sentiment"
    run("train", "--task", "sentiment", "--input", str(FIXTURES / "sentiment_ru.csv"),
        "--model", str(directory), "--no-embeddings")  # fmt: skip
    return directory


def test_train_reports_progress_and_saves_a_model(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "model"

    output = run("train", "--task", "sentiment", "--input", str(FIXTURES / "sentiment_en.csv"),
                 "--model", str(directory), "--no-embeddings")  # fmt: skip

    assert "read 90 labelled rows" in output
    assert "cross-validation: 5/5 folds done" in output
    assert "final model fitted" in output
    assert "cross-validated macro-F1 0." in output
    assert f"model saved to {directory}" in output
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    assert (meta["task"], meta["labels"]) == ("sentiment", ["negative", "neutral", "positive"])
    assert 0.5 < meta["metrics"]["macro_f1"] <= 1.0
    assert (directory / "model.bin").stat().st_size > 1000


def test_classify_adds_predicted_and_confidence_to_every_row(
    sentiment_model: Path, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "comments.csv",
        "\ufeffid,text,branch\n"
        '1,"Ужасное обслуживание, ждал час, грубый кассир",B01\n'
        "2,,B02\n"
        '3,"Спасибо большое, всё отлично!",B03\n'
        '4,"Хочу узнать, как поменять тариф"\n',  # a short row: padded
    )
    target = tmp_path / "predictions.csv"

    output = run("classify", "--model", str(sentiment_model), "--input", str(source),
                 "--output", str(target))  # fmt: skip

    rows = read_rows(target)
    assert rows[0] == ["id", "text", "branch", "predicted", "confidence"]
    assert [row[:3] for row in rows[1:]] == [
        ["1", "Ужасное обслуживание, ждал час, грубый кассир", "B01"],
        ["2", "", "B02"],
        ["3", "Спасибо большое, всё отлично!", "B03"],
        ["4", "Хочу узнать, как поменять тариф", ""],
    ]
    assert [row[3] for row in rows[1:4]] == ["negative", "", "positive"]
    assert rows[2][4] == "0"  # an empty text: no prediction
    assert 1 / 3 < float(rows[1][4]) <= 1.0
    assert "classified 4 rows" in output
    assert "1 with an empty text left unclassified" in output
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_classify_replaces_the_columns_of_an_earlier_run(
    sentiment_model: Path, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.csv", "Text,predicted,confidence\nОтлично,positive,0.9\n")  # noqa: RUF001
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"

    run("classify", "--model", str(sentiment_model), "--input", str(source), "--output", str(first))
    run("classify", "--model", str(sentiment_model), "--input", str(first), "--output", str(second))

    assert read_rows(second)[0] == ["Text", "predicted", "confidence"]
    assert read_rows(second) == read_rows(first)


def test_classify_streams_in_batches(
    sentiment_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxloop.text.management.commands import text as command
    from cxloop.text.ml import Classifier

    sizes: list[int] = []
    predict = Classifier.predict

    def counting(self: Classifier, texts: list[str]) -> list:
        sizes.append(len(texts))
        return predict(self, texts)

    monkeypatch.setattr(command, "BATCH", 7)
    monkeypatch.setattr(Classifier, "predict", counting)
    source = write(tmp_path / "in.csv", "text\n" + "Всё плохо\n" * 20)

    run("classify", "--model", str(sentiment_model), "--input", str(source),
        "--output", str(tmp_path / "out.csv"))  # fmt: skip

    assert sizes == [7, 7, 6]
    assert len(read_rows(tmp_path / "out.csv")) == 21


def test_multilabel_train_and_classify_join_labels_with_a_bar(tmp_path: Path) -> None:
    directory = tmp_path / "reasons"
    output = run("train", "--task", "reasons", "--input", str(FIXTURES / "reasons_multi.csv"),
                 "--model", str(directory), "--multilabel", "--no-embeddings")  # fmt: skip
    source = write(
        tmp_path / "in.csv",
        "text\nWaited two hours in the queue and then the cashier was rude.\nThanks, all fine.\n",
    )

    run("classify", "--model", str(directory), "--input", str(source),
        "--output", str(tmp_path / "out.csv"))  # fmt: skip

    rows = read_rows(tmp_path / "out.csv")
    assert set(rows[1][1].split("|")) == {"waiting", "staff"}
    assert rows[2][1] == ""
    assert float(rows[2][2]) < 0.5
    # Rows with no reason are negatives for every label, not skipped.
    assert "read 60 labelled rows" in output


def test_train_accepts_a_category_column_a_bom_and_semicolons(tmp_path: Path) -> None:
    with (FIXTURES / "sentiment_ro.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    source = tmp_path / "labelled.csv"
    with source.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["Category", "Text"])
        writer.writerows([[label, text] for text, label in rows])
        writer.writerow(["positive", "  "])  # skipped: no text

    output = run("train", "--task", "s", "--input", str(source), "--model",
                 str(tmp_path / "m"), "--no-embeddings")  # fmt: skip

    assert "read 90 labelled rows" in output
    assert "skipped 1 with an empty text or label" in output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("comment,label\nhello,positive\n", "has no 'text' column"),
        ("text,score\nhello,5\n", "has no 'label' column"),
        ("text,label\n" + "nice,positive\n" * 20, "cannot train: the texts carry 1 distinct"),
        ("text,label\n" + ",positive\n" * 20, "no row has both a text and a label"),
        ("text,label\nnice,positive\nbad,negative\n", "cannot train: 2 labelled texts"),
    ],
)
def test_train_refuses_bad_input_clearly_and_writes_no_model(
    tmp_path: Path, content: str, message: str
) -> None:
    source = write(tmp_path / "in.csv", content)

    with pytest.raises(CommandError, match=message):
        run("train", "--task", "t", "--input", str(source), "--model", str(tmp_path / "m"),
            "--no-embeddings")  # fmt: skip

    assert not (tmp_path / "m").exists()


def test_train_refuses_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "text,label\nужасно,negative\n", encoding="cp1251")  # noqa: RUF001

    with pytest.raises(CommandError, match="not UTF-8"):
        run("train", "--task", "t", "--input", str(source), "--model", str(tmp_path / "m"))


def test_a_malformed_row_is_reported_with_its_line(tmp_path: Path) -> None:
    source = write(
        tmp_path / "in.csv", "text,label\nfine,positive\nxxxxxxxxxxxxxxxxxxxx,negative\n"
    )
    limit = csv.field_size_limit(10)
    try:
        with pytest.raises(CommandError, match=r"in\.csv, line 3: field larger than field limit"):
            run("train", "--task", "t", "--input", str(source), "--model", str(tmp_path / "m"))
    finally:
        csv.field_size_limit(limit)


def test_train_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        run("train", "--task", "t", "--input", str(tmp_path / "nope.csv"), "--model",
            str(tmp_path / "m"))  # fmt: skip


def test_train_checks_the_model_directory_before_training(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    write(busy / "notes.txt", "mine")
    afile = write(tmp_path / "afile", "x")
    source = str(FIXTURES / "sentiment_en.csv")

    with pytest.raises(CommandError, match="holds other files"):
        run("train", "--task", "t", "--input", source, "--model", str(busy))
    with pytest.raises(CommandError, match="is a file"):
        run("train", "--task", "t", "--input", source, "--model", str(afile))

    assert (busy / "notes.txt").read_text() == "mine"
    assert afile.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_train_refuses_an_unwritable_model_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(CommandError, match="not writable"):
            run("train", "--task", "t", "--input", str(FIXTURES / "sentiment_en.csv"),
                "--model", str(locked / "m"))  # fmt: skip
    finally:
        locked.chmod(0o700)


def test_classify_refuses_a_missing_or_corrupt_model_and_keeps_the_old_output(
    tmp_path: Path,
) -> None:
    source = write(tmp_path / "in.csv", "text\nhello\n")
    target = write(tmp_path / "out.csv", "precious\n")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.bin").write_bytes(b"\x00garbage")
    empty = tmp_path / "empty"
    empty.mkdir()

    for directory, message in [
        (tmp_path / "missing", "not a directory"),
        (empty, "no model.bin"),
        (corrupt, "not a cxloop text model"),
    ]:
        with pytest.raises(CommandError, match=f"cannot load the model: .*{message}"):
            run("classify", "--model", str(directory), "--input", str(source),
                "--output", str(target))  # fmt: skip

    assert target.read_text() == "precious\n"


def test_classify_refuses_bad_input_and_output_paths(sentiment_model: Path, tmp_path: Path) -> None:
    good = write(tmp_path / "in.csv", "text\nhello\n")
    no_text = write(tmp_path / "no_text.csv", "comment\nhello\n")
    empty = write(tmp_path / "empty.csv", "")
    model = str(sentiment_model)
    out = str(tmp_path / "out.csv")

    cases = [
        (["--input", str(tmp_path / "nope.csv"), "--output", out], "no such file"),
        (["--input", str(no_text), "--output", out], "has no 'text' column"),
        (["--input", str(empty), "--output", out], "is empty"),
        (["--input", str(good), "--output", str(good)], "is the input file"),
        (["--input", str(good), "--output", str(tmp_path)], "is a directory"),
        (["--input", str(good), "--output", str(tmp_path / "no" / "o.csv")], "no such directory"),
    ]
    for args, message in cases:
        with pytest.raises(CommandError, match=message):
            run("classify", "--model", model, *args)

    assert not (tmp_path / "out.csv").exists()
    assert good.read_text() == "text\nhello\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "in.csv", "no_text.csv"]


def test_the_console_script_trains_and_classifies(tmp_path: Path) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "cxloop.settings"}
    source = write(tmp_path / "in.csv", "id,text\n1,Nimeni nu răspunde la telefon\n2,Mulțumesc!\n")

    trained = subprocess.run(
        [str(CXLOOP), "text", "train", "--task", "sentiment", "--input",
         str(FIXTURES / "sentiment_ro.csv"), "--model", str(tmp_path / "m"), "--no-embeddings"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    classified = subprocess.run(
        [str(CXLOOP), "text", "classify", "--model", str(tmp_path / "m"), "--input", str(source),
         "--output", str(tmp_path / "out.csv")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    failed = subprocess.run(
        [str(CXLOOP), "text", "classify", "--model", str(tmp_path / "nope"), "--input",
         str(source), "--output", str(tmp_path / "x.csv")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip

    assert trained.returncode == 0, trained.stderr
    assert "model saved to" in trained.stdout
    assert classified.returncode == 0, classified.stderr
    rows = read_rows(tmp_path / "out.csv")
    assert rows[0] == ["id", "text", "predicted", "confidence"]
    assert [row[2] for row in rows[1:]] == ["negative", "positive"]
    assert failed.returncode != 0
    assert "cannot load the model" in failed.stderr
    assert not (tmp_path / "x.csv").exists()
