"""cxloop.text.ml: training, prediction, calibration and storage of the text classifiers, on
the small multilingual fixtures in ``fixtures/`` (invented customer comments)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from cxloop.text import ml
from cxloop.text.ml import Classifier, ModelError, Prediction, TrainingError

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str) -> tuple[list[str], list[str]]:
    with (FIXTURES / name).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["label"] for row in rows]


def reasons() -> tuple[list[str], list[list[str]]]:
    texts, labels = read("reasons_multi.csv")
    return texts, [[part for part in label.split("|") if part] for label in labels]


@pytest.fixture(scope="module")
def sentiment_en() -> Classifier:
    texts, labels = read("sentiment_en.csv")
    return Classifier.train(texts, labels, task="sentiment", embeddings=False)


@pytest.fixture(scope="module")
def reasons_model() -> Classifier:
    texts, labels = reasons()
    return Classifier.train(texts, labels, task="reasons", multilabel=True, embeddings=False)


def test_normalise_folds_case_diacritics_yo_digits_and_spaces() -> None:
    assert ml.normalise("  Nu-mi  PLACE ţeava şi ședința\n") == "nu-mi place teava si sedinta"
    assert ml.normalise("Ёлка за 1250 лей") == "елка за 0000 лей"
    # Ukrainian letters are letters of their own, not Latin ones with marks.
    assert ml.normalise("Їжа Є") == "їжа є"
    assert ml.normalise("\uff21\uff22\uff23\uff15") == "abc0"  # NFKC: full-width ABC5


@pytest.mark.parametrize("name", ["sentiment_en.csv", "sentiment_ro.csv", "sentiment_ru.csv"])
def test_it_learns_three_class_sentiment_in_each_language(name: str) -> None:
    texts, labels = read(name)
    train_x, test_x, train_y, test_y = train_test_split(
        texts, labels, test_size=0.3, stratify=labels, random_state=1
    )
    model = Classifier.train(train_x, train_y, task="sentiment", embeddings=False)

    predicted = [p.label for p in model.predict(test_x)]

    # Chance is 1/3 for three balanced classes.
    assert f1_score(test_y, predicted, average="macro") >= 0.6
    assert model.labels == ["negative", "neutral", "positive"]
    assert model.metrics["folds"] == 5
    assert model.metrics["n"] == len(train_x)
    assert set(model.metrics["per_label"]) == set(model.labels)
    assert 0.4 <= model.metrics["macro_f1"] <= 1.0


def test_predictions_are_calibrated_distributions(sentiment_en: Classifier) -> None:
    texts = ["Terrible service, I waited an hour and nobody helped", "Thank you, great help!"]

    proba = sentiment_en.predict_proba(texts)
    predictions = sentiment_en.predict(texts)

    assert proba.shape == (2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert [p.label for p in predictions] == ["negative", "positive"]
    for prediction, row in zip(predictions, proba, strict=True):
        assert prediction.confidence == pytest.approx(row.max())
        assert prediction.labels == (prediction.label,)
        assert prediction.scores[prediction.label] == pytest.approx(row.max(), abs=1e-4)
    # The temperature was fitted: a clear text is likely, never certain.
    assert 0.5 < predictions[1].confidence < 1.0


def test_an_empty_text_gets_the_lowest_confidence_not_an_error(sentiment_en: Classifier) -> None:
    predictions = sentiment_en.predict(["", "   \n", "Great, thanks!"])

    assert predictions[0].confidence == pytest.approx(1 / 3)
    assert predictions[1].scores == {"negative": 0.3333, "neutral": 0.3333, "positive": 0.3333}
    assert predictions[2].confidence > 0.5
    assert sentiment_en.predict([]) == []
    assert sentiment_en.predict_proba([]).shape == (0, 3)


def test_multilabel_returns_every_reason_a_comment_carries(reasons_model: Classifier) -> None:
    predictions = reasons_model.predict(
        [
            "I waited two hours in the queue and then the cashier was rude to me.",
            "Ждал в очереди полтора часа, кассир нагрубила.",
            "Thank you, all was fine.",
        ]
    )

    assert set(predictions[0].labels) == {"waiting", "staff"}
    assert set(predictions[1].labels) == {"waiting", "staff"}
    assert predictions[0].label in ("waiting", "staff")
    assert predictions[2].labels == ()
    assert predictions[2].label == ""
    assert predictions[2].confidence < ml.THRESHOLD
    assert reasons_model.multilabel
    assert reasons_model.labels == ["app", "delivery", "fees", "staff", "waiting"]


def test_multilabel_beats_chance_on_held_out_comments() -> None:
    texts, labels = reasons()
    train_x, test_x, train_y, test_y = train_test_split(
        texts, labels, test_size=0.3, random_state=0
    )
    model = Classifier.train(train_x, train_y, task="reasons", multilabel=True, embeddings=False)

    proba = model.predict_proba(test_x)
    truth = np.array([[label in row for label in model.labels] for row in test_y])

    # Independent labels at their base rates would score about 0.25 micro-F1.
    assert f1_score(truth, proba >= ml.THRESHOLD, average="micro") >= 0.6
    assert model.metrics["macro_f1"] > 0.3


def test_round_trip_through_bytes_and_a_directory_predicts_the_same(
    sentiment_en: Classifier, reasons_model: Classifier, tmp_path: Path
) -> None:
    texts = ["Rude staff and a long queue", "Merci, tout va bien", "Спасибо!", ""]
    for model in (sentiment_en, reasons_model):
        again = Classifier.from_bytes(model.to_bytes())
        model.save(tmp_path / model.task)
        loaded = Classifier.load(tmp_path / model.task)

        for other in (again, loaded):
            np.testing.assert_array_equal(other.predict_proba(texts), model.predict_proba(texts))
            assert other.predict(texts) == model.predict(texts)
            assert (other.task, other.labels, other.multilabel) == (
                model.task,
                model.labels,
                model.multilabel,
            )
            assert other.metrics == model.metrics

    meta = json.loads((tmp_path / "sentiment" / "meta.json").read_text(encoding="utf-8"))
    assert meta["task"] == "sentiment"
    assert meta["labels"] == ["negative", "neutral", "positive"]
    assert meta["embeddings"] is False
    assert meta["metrics"]["macro_f1"] == sentiment_en.metrics["macro_f1"]
    assert {"created", "cxloop", "sklearn", "format"} <= set(meta)
    assert sorted(p.name for p in (tmp_path / "sentiment").iterdir()) == ["meta.json", "model.bin"]


def test_bytes_are_compressed(sentiment_en: Classifier) -> None:
    data = sentiment_en.to_bytes()

    assert data.startswith(ml.MAGIC)
    assert len(data) < 2_000_000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a cxloop text model"),
        (b"PK\x03\x04 some zip file", "not a cxloop text model"),
        (ml.MAGIC + b'{"format": 1}\nnot zlib', "damaged"),
        (ml.MAGIC + b'{"format": 999}\n', "retrain"),
        (ml.MAGIC + b"not json\n", "damaged"),
    ],
)
def test_bytes_that_are_not_a_model_are_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        Classifier.from_bytes(data)


def test_a_directory_without_a_model_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a directory"):
        Classifier.load(tmp_path / "missing")
    with pytest.raises(ModelError, match=r"no model\.bin"):
        Classifier.load(tmp_path)


def test_a_failed_save_keeps_the_old_model(
    sentiment_en: Classifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentiment_en.save(tmp_path)
    before = (tmp_path / "model.bin").read_bytes()

    def broken(self: Classifier) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(Classifier, "to_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        sentiment_en.save(tmp_path)

    assert (tmp_path / "model.bin").read_bytes() == before


ONE_LABEL = (["good"] * 12, ["positive"] * 12)


@pytest.mark.parametrize(
    ("texts", "targets", "kwargs", "message"),
    [
        (["a b c"] * 12, ["x"] * 12, {}, "1 distinct label"),
        (["nice", "bad"] * 4, ["pos", "neg"] * 4, {}, "at least 10 needed"),
        (["", "  "] * 10, ["pos", "neg"] * 10, {}, "0 labelled texts"),
        (["nice", "bad"] * 10, ["pos", ""] * 10, {}, "1 distinct label"),
        (["text"] * 12, ["pos"] * 11, {}, "12 texts but 11 labels"),
        ([f"t{i}" for i in range(12)], ["a", "b"] + ["c"] * 10, {}, "at least 2 labels need"),
        (["x y"] * 12, ["pos", "neg"] * 6, {"multilabel": True}, "sequences of labels"),
        (["x y"] * 12, [["pos"], ["neg"]] * 6, {}, "single-label targets are strings"),
    ],
)
def test_training_data_that_cannot_give_a_model_is_refused_clearly(
    texts: list[str], targets: list[Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TrainingError, match=message):
        Classifier.train(texts, targets, task="t", embeddings=False, **kwargs)


def test_folds_shrink_to_the_rarest_label_and_a_single_example_is_still_learnt() -> None:
    texts, labels = read("sentiment_en.csv")
    rare = "My cat ate the SIM card."
    texts = [*texts, rare, "Two meows for the router please.", "Meow meow, cats ate my router."]
    labels = [*labels, "cats", "cats", "cat-router"]

    model = Classifier.train(texts, labels, task="sentiment", embeddings=False)

    assert model.metrics["folds"] == 2  # "cats" has 2 examples
    assert model.metrics["untested_labels"] == ["cat-router"]
    assert "cat-router" not in model.metrics["per_label"]
    assert "cat-router" in model.labels
    assert model.predict(["Meow meow, cats ate my router."])[0].label == "cat-router"


def test_training_twice_gives_the_same_model() -> None:
    texts, labels = read("sentiment_ro.csv")
    check = ["Mulțumesc frumos!", "Nimeni nu răspunde", "Am venit la filială"]

    first = Classifier.train(texts, labels, task="s", embeddings=False)
    second = Classifier.train(texts, labels, task="s", embeddings=False)

    # The fits run on threads in any order; the result must not depend on it.
    np.testing.assert_allclose(first.predict_proba(check), second.predict_proba(check), atol=1e-9)
    assert first.metrics["per_label"] == second.metrics["per_label"]


def test_rows_with_an_empty_text_are_left_out_of_training() -> None:
    texts, labels = read("sentiment_en.csv")

    model = Classifier.train(
        [*texts, " ", ""], [*labels, "neutral", "oops"], task="s", embeddings=False
    )

    assert model.labels == ["negative", "neutral", "positive"]
    assert model.metrics["n"] == len(texts)
    assert model.metrics["skipped_texts"] == 2


def test_progress_reports_each_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    texts, labels = read("sentiment_ru.csv")
    messages: list[str] = []

    Classifier.train(
        texts, labels, task="s", embeddings=False, cv_folds=3, progress=messages.append
    )

    assert messages[0] == "90 texts, 3 labels; features"
    assert messages[1].startswith("cross-validation: 3 folds and the final model, ")
    assert [m for m in messages if m.endswith("folds done")] == [
        "cross-validation: 1/3 folds done",
        "cross-validation: 2/3 folds done",
        "cross-validation: 3/3 folds done",
    ]
    assert "final model fitted" in messages
    assert messages[-1].startswith("cross-validated macro-F1 ")


def test_embeddings_default_follows_the_setting(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.TEXT_EMBEDDINGS = "0"
    assert not ml._embeddings_wanted()
    settings.TEXT_EMBEDDINGS = True
    assert ml._embeddings_wanted() == ml.embeddings_available()
    del settings.TEXT_EMBEDDINGS
    monkeypatch.setenv("TEXT_EMBEDDINGS", "0")
    assert not ml._embeddings_wanted()
    monkeypatch.setenv("TEXT_EMBEDDINGS", "1")
    assert ml._embeddings_wanted() == ml.embeddings_available()


def test_embed_gives_unit_vectors_of_the_first_characters() -> None:
    long = "The app crashes. " + "x" * 5_000

    vectors = ml.embed(["Card arrived", "Карта пришла", long, long[: ml.EMBED_CHARS], ""])

    assert vectors.shape == (5, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    # Only the beginning is embedded.
    np.testing.assert_allclose(vectors[2], vectors[3], atol=1e-6)
    # Multilingual: the same meaning is close across languages, unlike another meaning.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert ml.embed([]).shape == (0, 384)


def test_a_model_with_embeddings_trains_predicts_and_round_trips() -> None:
    texts, labels = read("sentiment_ro.csv")

    model = Classifier.train(texts, labels, task="sentiment", embeddings=True, cv_folds=3)

    assert model.embeddings
    assert model.metrics["macro_f1"] > 0.5
    check = ["Mulțumesc, servire excelentă!", "Am așteptat două ore, groaznic.", ""]
    assert [p.label for p in model.predict(check)[:2]] == ["positive", "negative"]
    again = Classifier.from_bytes(model.to_bytes())
    np.testing.assert_allclose(again.predict_proba(check), model.predict_proba(check))


def test_training_goes_on_without_embeddings_past_their_time_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts, labels = read("sentiment_en.csv")
    monkeypatch.setattr(ml, "EMBED_BUDGET_S", 0.001)
    monkeypatch.setattr(ml, "EMBED_BATCH", 8)  # the budget is checked after each batch
    messages: list[str] = []

    model = Classifier.train(texts, labels, task="s", embeddings=True, progress=messages.append)

    assert not model.embeddings
    assert any("training without them" in m for m in messages)


def test_long_texts_short_of_time_are_embedded_from_a_shorter_beginning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An embedder whose cost grows with the characters it reads, on a clock the test keeps:
    200 characters a text would not fit the budget, a shorter beginning does, and the model
    reads the same beginning at prediction."""
    texts, labels = read("sentiment_en.csv")
    texts = [t + " " + "and so on " * 40 for t in texts]  # long reviews
    clock = [0.0]
    seen: list[int] = []

    def fake_embed(batch: list[str], chars: int = ml.EMBED_CHARS) -> np.ndarray:
        seen.append(chars)
        clock[0] += 0.001 * sum(min(len(t), chars) for t in batch)
        rng = np.random.default_rng(abs(hash(tuple(t[:chars] for t in batch))) % 2**32)
        v = rng.normal(size=(len(batch), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    monkeypatch.setattr(ml, "embed", fake_embed)
    monkeypatch.setattr(ml, "EMBED_BATCH", 16)
    monkeypatch.setattr(ml.time, "perf_counter", lambda: clock[0])
    # 90 texts x 200 characters = 18 s; 10 s of budget fits about 100 characters.
    monkeypatch.setattr(ml, "EMBED_BUDGET_S", 10.0)
    messages: list[str] = []

    model = Classifier.train(texts, labels, task="s", embeddings=True, progress=messages.append)

    assert model.embeddings
    assert ml.EMBED_CHARS_MIN <= model.embed_chars < ml.EMBED_CHARS
    assert any("first" in m and "characters" in m for m in messages)
    seen.clear()
    model.predict(texts[:3])
    assert seen == [model.embed_chars]


def test_the_baseline_is_the_reference_pipeline() -> None:
    texts, labels = read("sentiment_en.csv")

    baseline = ml.baseline_model().fit(texts, labels)

    char, word = (t for _, t in baseline.named_steps["features"].transformer_list)
    assert (char.analyzer, char.ngram_range, char.min_df) == ("char_wb", (2, 5), 2)
    assert (word.analyzer, word.ngram_range) == ("word", (1, 2))
    assert baseline.predict(["Terrible service, awful"])[0] == "negative"


def test_prediction_is_a_frozen_value() -> None:
    prediction = Prediction("positive", 0.9, ("positive",), {"positive": 0.9})

    with pytest.raises(AttributeError):
        prediction.label = "negative"  # type: ignore[misc]
