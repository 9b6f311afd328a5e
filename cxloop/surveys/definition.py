"""What a survey asks and when it is sent, as validated JSON (pydantic).

``Survey.definition`` holds a ``SurveyDefinition`` (questions, texts per language, branding)
and ``Survey.rules`` holds ``Rules`` (trigger, fatigue limits, send window, channels,
reminder, expiry). ``parse_definition``/``parse_rules`` turn stored JSON into models and
raise ``pydantic.ValidationError`` with every problem at once; ``error_dict`` (core) turns
that into ``{"field": ["message"]}`` for forms and the API.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from cxloop.core.validation import Code, Slug

Language = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$"
    ),
]
QuestionCode = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-z][a-z0-9_]{0,31}$")
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Texts = dict[Language, Text]

# Names a text may use in braces, filled in from the interaction: "How was your visit to
# {branch}?". Anything else in braces is refused when the survey is saved.
PLACEHOLDERS = ("company", "branch", "product", "touchpoint", "employee")
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")

SCORE_TYPES = ("nps", "csat", "ces")
SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
QuestionType = Literal["nps", "csat", "ces", "single", "multiple", "text", "contact", "competitors"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_placeholders(texts: Mapping[str, str]) -> None:
    for text in texts.values():
        for name in PLACEHOLDER_RE.findall(text):
            if name not in PLACEHOLDERS:
                raise ValueError(
                    f"unknown placeholder {{{name}}}; use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                )


class Option(Strict):
    code: QuestionCode
    text: Texts

    @field_validator("text")
    @classmethod
    def _placeholders(cls, value: Texts) -> Texts:
        _check_placeholders(value)
        return value


class Question(Strict):
    code: QuestionCode
    type: QuestionType
    text: Texts
    required: bool = False
    # single and multiple choice
    options: list[Option] = Field(default_factory=list, max_length=50)
    # competitors: the other providers the customer may also use
    competitors: list[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    ] = Field(default_factory=list, max_length=20)
    # Shown only when the score is in this range, e.g. the call-back question to detractors.
    show_if_score_at_most: int | None = None
    show_if_score_at_least: int | None = None

    @field_validator("text")
    @classmethod
    def _placeholders(cls, value: Texts) -> Texts:
        _check_placeholders(value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> Question:
        if self.type in ("single", "multiple"):
            if len(self.options) < 2:
                raise ValueError(f"question {self.code}: a choice needs at least two options")
            codes = [o.code for o in self.options]
            if len(set(codes)) != len(codes):
                raise ValueError(f"question {self.code}: option codes must be unique")
        elif self.options:
            raise ValueError(f"question {self.code}: only choice questions have options")
        if self.type == "competitors":
            if not self.competitors:
                raise ValueError(f"question {self.code}: name at least one competitor")
        elif self.competitors:
            raise ValueError(f"question {self.code}: only a competitors question lists them")
        return self

    def shown_for(self, score: int | None) -> bool:
        if self.show_if_score_at_most is None and self.show_if_score_at_least is None:
            return True
        if score is None:
            return False
        if self.show_if_score_at_most is not None and score > self.show_if_score_at_most:
            return False
        return not (self.show_if_score_at_least is not None and score < self.show_if_score_at_least)


class Branding(Strict):
    company_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    logo_url: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, max_length=500, pattern=r"^(https://|/)\S*$"),
        ]
        | None
    ) = None
    colour: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] = "#1f4f99"


class Review(Strict):
    """An invitation to post a public review, shown to every respondent whatever their score."""

    url: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=500, pattern=r"^https?://\S+$")
    ]
    text: Texts


class SurveyDefinition(Strict):
    languages: list[Language] = Field(min_length=1, max_length=20)
    default_language: Language
    title: Texts
    intro: Texts = Field(default_factory=dict)
    questions: list[Question] = Field(min_length=1, max_length=40)
    thank_you: Texts
    email_subject: Texts
    sms_text: Texts = Field(default_factory=dict)
    branding: Branding = Field(default_factory=Branding)
    review: Review | None = None

    @field_validator("title", "intro", "thank_you", "email_subject", "sms_text")
    @classmethod
    def _placeholders(cls, value: Texts) -> Texts:
        _check_placeholders(value)
        return value

    @model_validator(mode="after")
    def _complete(self) -> SurveyDefinition:
        if len(set(self.languages)) != len(self.languages):
            raise ValueError("languages are listed twice")
        if self.default_language not in self.languages:
            raise ValueError("default_language must be one of languages")
        first = self.questions[0]
        if first.type not in SCORE_TYPES:
            raise ValueError("the first question must be the score: nps, csat or ces")
        codes = [q.code for q in self.questions]
        if len(set(codes)) != len(codes):
            raise ValueError("question codes must be unique")
        if any(q.type in SCORE_TYPES for q in self.questions[1:]):
            raise ValueError("only the first question may be a score")
        low, high = SCALES[first.type]
        for q in self.questions:
            for bound in (q.show_if_score_at_most, q.show_if_score_at_least):
                if bound is not None and not low <= bound <= high:
                    raise ValueError(
                        f"question {q.code}: score bound {bound} is outside {low}-{high}"
                    )
        missing: list[str] = []
        groups: list[tuple[str, Mapping[str, str]]] = [
            ("title", self.title),
            ("thank_you", self.thank_you),
            ("email_subject", self.email_subject),
        ]
        if self.intro:
            groups.append(("intro", self.intro))
        if self.sms_text:
            groups.append(("sms_text", self.sms_text))
        if self.review:
            groups.append(("review.text", self.review.text))
        for q in self.questions:
            groups.append((f"question {q.code}", q.text))
            groups.extend((f"question {q.code} option {o.code}", o.text) for o in q.options)
        for where, texts in groups:
            lacking = [lang for lang in self.languages if lang not in texts]
            if lacking:
                missing.append(f"{where}: {', '.join(lacking)}")
        if missing:
            raise ValueError("texts missing for some languages — " + "; ".join(missing))
        return self

    @property
    def score_question(self) -> Question:
        return self.questions[0]

    @property
    def scale(self) -> tuple[int, int]:
        return SCALES[self.score_question.type]

    def question(self, code: str) -> Question | None:
        return next((q for q in self.questions if q.code == code), None)

    def pick_language(self, *preferred: str | None) -> str:
        """The first of ``preferred`` the survey speaks (``ro-MD`` matches ``ro``), else its default."""
        for lang in preferred:
            if not lang:
                continue
            lang = lang.lower()
            if lang in self.languages:
                return lang
            base = lang.split("-")[0]
            if base in self.languages:
                return base
        return self.default_language


class SendWindow(Strict):
    """Local hours in the customer's time zone; outside them a send waits for the next start."""

    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(20, 0)

    @model_validator(mode="after")
    def _order(self) -> SendWindow:
        if self.start >= self.end:
            raise ValueError("the send window must start before it ends (same day)")
        return self


Channel = Literal["email", "sms"]


def _both_channels() -> list[Channel]:
    return ["email", "sms"]


class Rules(Strict):
    # Trigger (transactional surveys): which interactions.
    touchpoints: list[Code] = Field(default_factory=list, max_length=200)
    interaction_types: list[Slug] = Field(default_factory=list, max_length=200)
    delay_minutes: int = Field(0, ge=0, le=60 * 24 * 30)
    sampling_rate: float = Field(1.0, ge=0.0, le=1.0)
    max_interaction_age_hours: int = Field(72, ge=1, le=24 * 365)
    # Fatigue: no survey at all within the quiet period after any invitation (all surveys),
    # and at most max_per_customer invitations of this survey per max_period_days.
    quiet_period_days: int = Field(30, ge=0, le=365)
    max_per_customer: int = Field(1, ge=1, le=100)
    max_period_days: int = Field(90, ge=1, le=3650)
    branch_daily_cap: int | None = Field(None, ge=1, le=1_000_000)
    # Delivery.
    send_window: SendWindow | None = Field(default_factory=SendWindow)
    channels: list[Channel] = Field(default_factory=_both_channels, min_length=1, max_length=2)
    reminder_after_days: int | None = Field(None, ge=1, le=30)
    expiry_days: int = Field(14, ge=1, le=90)
    # B2B: an account whose contacts left this many invitations in a row unanswered is at risk.
    unanswered_in_row: int = Field(3, ge=2, le=50)

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value


def parse_definition(raw: Any) -> SurveyDefinition:
    return SurveyDefinition.model_validate(raw)


def parse_rules(raw: Any) -> Rules:
    return Rules.model_validate(raw or {})


def fill(text: str, context: Mapping[str, str]) -> str:
    """Replace ``{branch}`` and friends; a name without a value becomes an empty string."""
    return PLACEHOLDER_RE.sub(lambda m: context.get(m.group(1), ""), text).replace("  ", " ")


def texts_for(texts: Mapping[str, str], language: str, fallback: str) -> str:
    return texts.get(language) or texts.get(fallback) or next(iter(texts.values()), "")


def default_definition(company: str = "") -> dict[str, Any]:
    """A ready-to-send NPS survey in English, Russian and Romanian."""

    def t(en: str, ru: str, ro: str) -> dict[str, str]:
        return {"en": en, "ru": ru, "ro": ro}

    return {
        "languages": ["en", "ru", "ro"],
        "default_language": "en",
        "title": t(
            "Your opinion matters", "Нам важно ваше мнение", "Părerea dumneavoastră contează"
        ),
        "intro": t(
            "Thank you for visiting {branch}. One question, ten seconds.",
            "Спасибо, что посетили {branch}. Один вопрос, десять секунд.",
            "Vă mulțumim că ați vizitat {branch}. O întrebare, zece secunde.",
        ),
        "questions": [
            {
                "code": "nps",
                "type": "nps",
                "required": True,
                "text": t(
                    "How likely are you to recommend {company} to a friend or colleague?",
                    "Насколько вероятно, что вы порекомендуете {company} другу или коллеге?",
                    "Cât de probabil este să recomandați {company} unui prieten sau coleg?",
                ),
            },
            {
                "code": "reasons",
                "type": "multiple",
                "text": t(
                    "What influenced your score most?",
                    "Что больше всего повлияло на вашу оценку?",
                    "Ce v-a influențat cel mai mult nota?",
                ),
                "options": [
                    {"code": "staff", "text": t("Staff", "Сотрудники", "Personalul")},
                    {
                        "code": "waiting",
                        "text": t("Waiting time", "Время ожидания", "Timpul de așteptare"),
                    },
                    {"code": "price", "text": t("Price", "Цена", "Prețul")},
                    {
                        "code": "quality",
                        "text": t("Quality of service", "Качество услуги", "Calitatea serviciului"),
                    },
                    {"code": "other", "text": t("Something else", "Другое", "Altceva")},
                ],
            },
            {
                "code": "comment",
                "type": "text",
                "text": t(
                    "What is the main reason for your score?",
                    "Какова главная причина вашей оценки?",
                    "Care este motivul principal al notei dumneavoastră?",
                ),
            },
            {
                "code": "contact",
                "type": "contact",
                "show_if_score_at_most": 6,
                "text": t(
                    "May we call you about this?",
                    "Можно ли нам позвонить вам по этому поводу?",
                    "Vă putem suna în legătură cu aceasta?",
                ),
            },
        ],
        "thank_you": t(
            "Thank you! Your answer helps us do better.",
            "Спасибо! Ваш ответ помогает нам стать лучше.",
            "Vă mulțumim! Răspunsul dumneavoastră ne ajută să devenim mai buni.",
        ),
        "email_subject": t(
            "How was your visit to {branch}?",
            "Как прошёл ваш визит в {branch}?",
            "Cum a fost vizita la {branch}?",
        ),
        "sms_text": t(
            "{company}: how was your visit? Tell us in 10 seconds:",
            "{company}: как прошёл ваш визит? Ответьте за 10 секунд:",
            "{company}: cum a fost vizita? Spuneți-ne în 10 secunde:",
        ),
        "branding": {"company_name": company, "colour": "#1f4f99"},
    }
