# ruff: noqa: RUF001 - Russian texts are written in Cyrillic on purpose
"""The demo's surveys, with a year of invitations, answers and decisions to analyse.

Three surveys, made as a CX manager would make them (``save_survey``, audited):

* ``after-visit``: transactional NPS after the touchpoint ``store-visit``, no delay, every
  visit, a 30-day quiet period and no send window, so that an interaction posted to the API
  after the demo is surveyed at once: the whole flow can be tried in a minute. It starts
  *now* (``active_since``): the year of demo interactions never sends an e-mail.
* ``support-csat``: CSAT 1-5 after the support journey's touchpoints, 30 % of them, sent
  two hours later inside 09:00-20:00.
* ``relationship-nps``: relationship NPS with a competitors question, one wave in the past.

The history is what those rules would have produced: every interaction at a surveyed
touchpoint gets its decision (no address or consent, sampled out, quiet period, survey
limit, a bounced address) or an invitation, sent minutes later, whose funnel (delivered,
opened, clicked, answered, bounced) and answer follow the rates a telecom sees. The answers
carry patterns for analysts to find, listed in docs/demo-data.md and planted by the score
model below: branches, employees, weekdays, evening hours, waiting times (the store visit's
``wait_min``, which the generator draws from the crowd), products, a queue problem fixed two
thirds into the history, and B2B accounts whose contacts stopped answering.

Determinism. Every draw comes from ``numpy`` generators seeded with the seed, the survey
stream and a sub-stream: one per chunk of interactions for what is decided per interaction,
one per step for the rest. Tokens are the only random values that are not drawn so (they
are secrets: ``models.new_token``), and database ids differ between runs as everywhere.

Scale. Decisions that depend on one interaction only are written with its chunk; the rest
(the interactions that may be invited: a few per customer) are kept as small arrays until
the end, where one pass in time order applies the quiet period and the survey limit per
customer (a Python loop over a few per customer: about a second per million). Rows go out
by the generator's ``RowWriter`` (COPY on PostgreSQL) in chunks.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
from django.db import connection

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Customer
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Employee
from cxloop.surveys.definition import Rules, default_definition, parse_rules
from cxloop.surveys.models import (
    Decision,
    DecisionOutcome,
    Invitation,
    InvitationStatus,
    Reason,
    Response,
    Suppression,
    SuppressionReason,
    Survey,
    SurveyKind,
    Wave,
    new_token,
)
from cxloop.surveys.services import save_survey

from .generator import (
    BRANCHES,
    CHANNEL_KIND,
    CHANNELS,
    CHAT_POOL,
    DIGITAL_KIND,
    EVENING_HOUR,
    FAMILIES,
    LANGUAGES,
    PHONE_KIND,
    REACH_EMAIL,
    REACH_EMAIL_CONSENT,
    REACH_PHONE,
    REACH_SMS_CONSENT,
    SEGMENTS,
    STORE_KIND,
    STORE_POOL,
    SURVEY_STREAM,
    TYPES,
    VOICE_POOL,
    WAITING_BRANCH,
    WAITING_FIX_AT,
    DemoOptions,
    DrawnChunk,
    FloatArray,
    IntArray,
    Org,
    Population,
    Progress,
    RowWriter,
    Timeline,
    _cdf,
)

# --- the surveys ----------------------------------------------------------------------------

AFTER_VISIT, SUPPORT, RELATIONSHIP = 0, 1, 2
CODES = ("after-visit", "support-csat", "relationship-nps")
STORE_VISIT = "store-visit"
# The support journey's contacts and the fix: hotline, chats, remote fix, technician visit.
SUPPORT_TOUCHPOINTS = (
    "TP-SUPPORT-CALL", "TP-WEB-CHAT", "TP-APP-CHAT", "TP-REMOTE-FIX", "TP-TECH-VISIT",
)  # fmt: skip
# Neutral invented names: the relationship survey asks about the customer's other providers.
COMPETITORS = ("Orion Mobile", "Nistru Telecom", "Prut Net")

AFTER_VISIT_RULES: dict[str, Any] = {
    "touchpoints": [STORE_VISIT],
    "delay_minutes": 0,
    "sampling_rate": 1.0,
    "quiet_period_days": 30,
    # No window: an interaction posted at any hour is surveyed at once, for trying the flow.
    "send_window": None,
    "channels": ["email", "sms"],
    "reminder_after_days": 3,
    "expiry_days": 14,
}
SUPPORT_RULES: dict[str, Any] = {
    "touchpoints": list(SUPPORT_TOUCHPOINTS),
    "delay_minutes": 120,
    "sampling_rate": 0.3,
    "quiet_period_days": 30,
    "send_window": {"start": "09:00", "end": "20:00"},
    "channels": ["email", "sms"],
    "reminder_after_days": 3,
    "expiry_days": 7,
}
RELATIONSHIP_RULES: dict[str, Any] = {
    "quiet_period_days": 30,
    "send_window": {"start": "10:00", "end": "19:00"},
    "channels": ["email", "sms"],
    "reminder_after_days": 5,
    "expiry_days": 21,
}


def _t(en: str, ru: str, ro: str) -> dict[str, str]:
    return {"en": en, "ru": ru, "ro": ro}


_OTHER = {"code": "other", "text": _t("Something else", "Другое", "Altceva")}
_CALL_BACK = _t(
    "May we call you about this?",
    "Можно ли нам позвонить вам по этому поводу?",
    "Vă putem suna în legătură cu aceasta?",
)
_THANKS = _t(
    "Thank you! Your answer helps us do better.",
    "Спасибо! Ваш ответ помогает нам стать лучше.",
    "Vă mulțumim! Răspunsul dumneavoastră ne ajută să devenim mai buni.",
)


def support_definition(company: str) -> dict[str, Any]:
    """CSAT 1-5 after a contact with support, with what mattered and a call-back offer."""
    return {
        "languages": ["en", "ru", "ro"],
        "default_language": "en",
        "title": _t("How did we do?", "Как мы справились?", "Cum ne-am descurcat?"),
        "intro": _t(
            "You recently contacted our support. Two quick questions.",
            "Недавно вы обращались в нашу службу поддержки. Всего два коротких вопроса.",
            "Recent ați contactat serviciul nostru de asistență. Doar două întrebări scurte.",
        ),
        "questions": [
            {
                "code": "csat",
                "type": "csat",
                "required": True,
                "text": _t(
                    "How satisfied are you with the help you received?",
                    "Насколько вы довольны полученной помощью?",
                    "Cât de mulțumit(ă) sunteți de ajutorul primit?",
                ),
            },
            {
                "code": "reasons",
                "type": "multiple",
                "text": _t(
                    "What mattered most?",
                    "Что было для вас самым важным?",
                    "Ce a contat cel mai mult?",
                ),
                "options": [
                    {
                        "code": "waiting",
                        "text": _t("Waiting time", "Время ожидания", "Timpul de așteptare"),
                    },
                    {
                        "code": "staff",
                        "text": _t(
                            "Knowledge and courtesy of our staff",
                            "Компетентность и вежливость сотрудников",
                            "Competența și amabilitatea personalului",
                        ),
                    },
                    {
                        "code": "resolution",
                        "text": _t(
                            "Whether the problem was solved",
                            "Решена ли проблема",
                            "Dacă problema a fost rezolvată",
                        ),
                    },
                    {
                        "code": "ease",
                        "text": _t(
                            "How easy it was to reach us",
                            "Насколько легко было с нами связаться",
                            "Cât de ușor ne-ați putut contacta",
                        ),
                    },
                    _OTHER,
                ],
            },
            {
                "code": "comment",
                "type": "text",
                "text": _t(
                    "What could we have done better?",
                    "Что мы могли бы сделать лучше?",
                    "Ce am fi putut face mai bine?",
                ),
            },
            {"code": "contact", "type": "contact", "show_if_score_at_most": 2, "text": _CALL_BACK},
        ],
        "thank_you": _THANKS,
        "email_subject": _t(
            "How did our support do?",
            "Как вам помогла наша поддержка?",
            "Cum v-a ajutat echipa noastră de asistență?",
        ),
        "sms_text": _t(
            "{company}: how did our support do? Tell us in 10 seconds:",
            "{company}: оцените работу поддержки за 10 секунд:",
            "{company}: evaluați asistența noastră în 10 secunde:",
        ),
        "branding": {"company_name": company, "colour": "#1f4f99"},
    }


def relationship_definition(company: str) -> dict[str, Any]:
    """Relationship NPS: what shapes the opinion, and the other providers the customer uses."""
    return {
        "languages": ["en", "ru", "ro"],
        "default_language": "en",
        "title": _t(
            "Your opinion of {company}",
            "Ваше мнение о {company}",
            "Părerea dumneavoastră despre {company}",
        ),
        "intro": _t(
            "Once or twice a year we ask some of our customers how we are doing overall. "
            "It takes a minute.",
            "Раз или два в год мы спрашиваем часть клиентов, как мы работаем в целом. "
            "Это займёт минуту.",
            "O dată sau de două ori pe an îi întrebăm pe unii clienți cum ne descurcăm "
            "în general. Durează un minut.",
        ),
        "questions": [
            {
                "code": "nps",
                "type": "nps",
                "required": True,
                "text": _t(
                    "How likely are you to recommend {company} to a friend or colleague?",
                    "Насколько вероятно, что вы порекомендуете {company} другу или коллеге?",
                    "Cât de probabil este să recomandați {company} unui prieten sau coleg?",
                ),
            },
            {
                "code": "reasons",
                "type": "multiple",
                "text": _t(
                    "What shapes your opinion of us most?",
                    "Что больше всего влияет на ваше мнение о нас?",
                    "Ce vă influențează cel mai mult părerea despre noi?",
                ),
                "options": [
                    {
                        "code": "network",
                        "text": _t(
                            "Network and internet quality",
                            "Качество связи и интернета",
                            "Calitatea rețelei și a internetului",
                        ),
                    },
                    {
                        "code": "price",
                        "text": _t(
                            "Prices and plans", "Цены и тарифы", "Prețurile și abonamentele"
                        ),
                    },
                    {
                        "code": "service",
                        "text": _t(
                            "Customer service", "Обслуживание клиентов", "Serviciul pentru clienți"
                        ),
                    },
                    {
                        "code": "app",
                        "text": _t(
                            "The app and the website", "Приложение и сайт", "Aplicația și site-ul"
                        ),
                    },
                    _OTHER,
                ],
            },
            {
                "code": "competitors",
                "type": "competitors",
                "competitors": list(COMPETITORS),
                "text": _t(
                    "Do you also use any of these providers? How likely are you to recommend them?",
                    "Пользуетесь ли вы также услугами этих операторов? Насколько вероятно, "
                    "что вы их порекомендуете?",
                    "Folosiți și serviciile acestor operatori? Cât de probabil este să îi "
                    "recomandați?",
                ),
            },
            {
                "code": "comment",
                "type": "text",
                "text": _t(
                    "What should we improve first?",
                    "Что нам стоит улучшить в первую очередь?",
                    "Ce ar trebui să îmbunătățim mai întâi?",
                ),
            },
            {"code": "contact", "type": "contact", "show_if_score_at_most": 6, "text": _CALL_BACK},
        ],
        "thank_you": _THANKS,
        "email_subject": _t(
            "{company}: one minute about our service",
            "{company}: одна минута о нашей работе",
            "{company}: un minut despre serviciile noastre",
        ),
        "sms_text": _t(
            "{company}: how are we doing? Tell us in a minute:",
            "{company}: как мы работаем? Ответьте за минуту:",
            "{company}: cum ne descurcăm? Spuneți-ne într-un minut:",
        ),
        "branding": {"company_name": company, "colour": "#1f4f99"},
    }


# --- the score model ------------------------------------------------------------------------
#
# An ordered logit: every answer has a latent mood x (a sum of the effects below); the answer
# is a detractor with probability sigmoid(CUT_DETRACTOR - x), a promoter with
# sigmoid(x - CUT_PROMOTER),
# else a passive; then a score in the band. At x = 0: 20 % detractors, 48 % promoters.

CUT_DETRACTOR = float(np.log(0.20 / 0.80))
CUT_PROMOTER = float(np.log(0.52 / 0.48))
DETRACTOR, PASSIVE, PROMOTER = 0, 1, 2
# Scores within a band: detractors mostly give 5 or 6, promoters more often 10 than 9.
NPS_BANDS = (
    (range(0, 7), (0.03, 0.02, 0.04, 0.07, 0.10, 0.30, 0.44)),
    (range(7, 9), (0.45, 0.55)),
    (range(9, 11), (0.42, 0.58)),
)
CSAT_BANDS = ((range(1, 4), (0.25, 0.30, 0.45)), (range(4, 5), (1.0,)), (range(5, 6), (1.0,)))

BASE_MOOD = 0.3
RELATIONSHIP_MOOD = 0.0
CUSTOMER_SPREAD = 0.45  # some customers are simply happier than others, answer after answer
BRANCH_EFFECT = {"B04": 0.9, "B08": 0.9, "B07": -1.0}
WAITING_BRANCH_EFFECT = -0.5  # on top of its longer waits, until the fix
WAIT_EFFECT = -0.045  # per minute in the queue beyond NORMAL_WAIT
NORMAL_WAIT = 8
WEEKDAY_EFFECT = (-0.45, 0.0, 0.05, 0.05, 0.0, -0.35, 0.1)
EVENING_EFFECT = -0.6
EMPLOYEE_SPREAD = 0.15
STANDOUT_EFFECT, POOR_EFFECT = 1.0, -1.0
# (branch code, pool, rank among the pool's people by how many customers they serve).
STANDOUTS = (("B02", STORE_POOL, 0), ("B05", STORE_POOL, 0), ("B06", VOICE_POOL, 0),
             ("B06", VOICE_POOL, 1))  # fmt: skip
POOR_PERFORMERS = (("B03", STORE_POOL, 0), ("B05", STORE_POOL, 1), ("B06", VOICE_POOL, 2),
                   ("B06", CHAT_POOL, 0))  # fmt: skip
FAMILY_EFFECT = {"mobile": 0.05, "internet": -0.15, "tv": -0.05, "device": 0.15}
SEGMENT_EFFECT = {"mass": 0.0, "premium": 0.15, "youth": -0.1, "senior": 0.25,
                  "small_business": -0.05, "corporate": -0.15}  # fmt: skip
TOUCHPOINT_EFFECT = {"TP-SUPPORT-CALL": -0.2, "TP-REMOTE-FIX": -0.1, "TP-WEB-CHAT": 0.1,
                     "TP-APP-CHAT": 0.2, "TP-TECH-VISIT": 0.3}  # fmt: skip
# Relationship answers: a customer's other providers and how they rate them. Orion Mobile
# rates below us, Nistru Telecom above, Prut Net about level.
COMPETITOR_USE = (0.30, 0.22, 0.12)
COMPETITOR_MOOD = (-1.3, 1.5, -0.35)
COMPETITOR_SCORED = 0.85

# What the answer was about, per survey (the options of its "reasons" question), and how
# often each is picked by detractors, passives and promoters.
REASONS = (
    ("staff", "waiting", "price", "quality", "other"),
    ("waiting", "staff", "resolution", "ease", "other"),
    ("network", "price", "service", "app", "other"),
)
REASON_WEIGHTS = np.array([
    [[1.0, 1.1, 0.8, 0.7, 0.25], [0.6, 0.6, 0.9, 0.8, 0.3], [1.6, 0.3, 0.4, 1.2, 0.2]],
    [[0.9, 0.8, 1.4, 0.5, 0.2], [0.6, 0.6, 0.8, 0.6, 0.3], [0.5, 1.5, 1.3, 0.8, 0.2]],
    [[1.2, 1.3, 0.8, 0.4, 0.2], [0.9, 1.0, 0.6, 0.5, 0.3], [1.0, 0.5, 1.2, 0.8, 0.2]],
])  # fmt: skip
WAITING_REASON = (1, 0, -1)  # column of "waiting" per survey
STAFF_REASON = (0, 1, -1)
NO_REASON, SECOND_REASON = 0.08, 0.3
COMMENT_SHARE = (0.55, 0.30, 0.38)  # detractors, passives, promoters
CALL_BACK_ANSWERED, CALL_BACK_YES = 0.6, 0.55

# --- the funnel -----------------------------------------------------------------------------

EMAIL, SMS = 0, 1
DELIVERY = ("email", "sms")
BAD_EMAIL_SHARE = 0.03  # addresses that bounce: the first e-mail to one bounces
DELIVERED = (0.985, 0.98)
OPENED_EMAIL = 0.5
CLICKED_SMS = 0.22  # SMS has no opens: a click is the first sign of life
CLICKED_OPENED = 0.68
ANSWERED_CLICKED = (0.82, 0.75)
SURVEY_RESPONSIVENESS = (1.0, 1.05, 0.78)
B2B_RESPONSIVENESS = 2.0
AFTER_REMINDER = 0.25  # of those who open, the share who do so after the reminder
ONE_CLICK = 0.55  # e-mail answers given by the score buttons in the e-mail itself
SILENT_ACCOUNT_SHARE = 0.07
SILENT_OPENS = 0.2

# --- the relationship wave ------------------------------------------------------------------

WAVE_AT = 0.45  # of the history, moved on to a Tuesday
WAVE_SHARE = 0.08
WAVE_RESPONSE_RATE = 0.2
WAVE_SPREAD_S = 2 * 3600  # the provider's rate limit spreads the sends over two hours

# Outcomes of the pass in time order.
INVITED, QUIET, LIMITED, BOUNCED = 0, 1, 2, 3


def _sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(rng: np.random.Generator, weights: FloatArray) -> IntArray:
    """One index per row of non-negative weights (each row with some weight)."""
    cdf = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cdf[:, -1]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), weights.shape[1] - 1).astype(np.int64)


def _band_scores(rng: np.random.Generator, category: IntArray, bands: Any) -> IntArray:
    u = rng.random(len(category))
    score = np.zeros(len(category), dtype=np.int64)
    for c, (values, weights) in enumerate(bands):
        rows = category == c
        picks = np.searchsorted(_cdf(weights), u[rows], side="right")
        score[rows] = np.array(values)[np.minimum(picks, len(weights) - 1)]
    return score


def _categories(rng: np.random.Generator, mood: FloatArray) -> IntArray:
    u = rng.random(len(mood))
    detractor = _sigmoid(CUT_DETRACTOR - mood)
    promoter = _sigmoid(mood - CUT_PROMOTER)
    return np.where(u < detractor, DETRACTOR, np.where(u >= 1 - promoter, PROMOTER, PASSIVE))


# --- comments -------------------------------------------------------------------------------
#
# Sentences by topic, sentiment (neg, mid, pos) and where they fit: "any", or only at a
# store, by phone or chat ("remote"), at a home visit ("field"). {Who} is the person who
# served (a consultant, an operator, a technician), {minutes} the wait. Written to read
# naturally for either sex of the writer (no gendered past tenses in Russian).

NEG, MID, POS = "neg", "mid", "pos"
SENTIMENTS = (NEG, MID, POS)
ANY, STORE, REMOTE, FIELD, NOWHERE = "any", "store", "remote", "field", "none"
STAFFED = frozenset({STORE, REMOTE, FIELD})
TEMPLATES: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    # staff
    ("staff", NEG, "staffed", _t(
        "{Who} was rude and clearly did not want to help.",
        "{Who} разговаривал грубо и явно не хотел помогать.",
        "{Who} a fost nepoliticos și nu a vrut deloc să mă ajute.")),
    ("staff", NEG, "staffed", _t(
        "{Who} could not answer a simple question about my plan.",
        "{Who} не смог ответить на простой вопрос о моём тарифе.",
        "{Who} nu a știut să răspundă la o întrebare simplă despre abonamentul meu.")),
    ("staff", NEG, ANY, _t(
        "I was given three different answers to the same question.",
        "На один и тот же вопрос мне дали три разных ответа.",
        "La aceeași întrebare am primit trei răspunsuri diferite.")),
    ("staff", NEG, STORE, _t(
        "Nobody explained the terms of the contract; I found out about the extra fees later.",
        "Условия договора никто не объяснил, о дополнительных платежах выяснилось позже.",
        "Nimeni nu mi-a explicat condițiile contractului, despre taxele suplimentare am "
        "aflat mai târziu.")),
    ("staff", MID, "staffed", _t(
        "{Who} was polite, but it took a long time to sort things out.",
        "{Who} был вежлив, но разбирались мы долго.",
        "{Who} a fost politicos, dar a durat mult până am rezolvat totul.")),
    ("staff", MID, ANY, _t(
        "The staff are friendly, though not very knowledgeable.",
        "Сотрудники приветливые, но не очень компетентные.",
        "Angajații sunt prietenoși, dar nu prea competenți.")),
    ("staff", POS, "staffed", _t(
        "{Who} was very friendly and explained everything patiently.",
        "{Who} был очень доброжелателен и всё терпеливо объяснил.",
        "{Who} a fost foarte amabil și mi-a explicat totul cu răbdare.")),
    ("staff", POS, "staffed", _t(
        "{Who} offered me a better plan without my even asking.",
        "{Who} сам предложил мне более выгодный тариф.",
        "{Who} mi-a propus singur un abonament mai avantajos.")),
    ("staff", POS, ANY, _t(
        "A real professional: quick, attentive and polite.",
        "Настоящий профессионал: быстро, внимательно и вежливо.",
        "Un adevărat profesionist: rapid, atent și politicos.")),
    ("staff", POS, STORE, _t(
        "{Who} helped me move my contacts to the new phone.",
        "{Who} помог перенести контакты на новый телефон.",
        "{Who} m-a ajutat să-mi mut contactele pe telefonul nou.")),
    # waiting
    ("waiting", NEG, STORE, _t(
        "I waited {minutes} in the queue, and only one desk was open.",
        "Пришлось ждать в очереди {minutes}, а работало всего одно окно.",
        "Am stat la coadă {minutes}, iar deschis era un singur ghișeu.")),
    ("waiting", NEG, STORE, _t(
        "A huge queue in the evening: {minutes} just to replace a SIM card.",
        "Вечером огромная очередь: {minutes} только чтобы поменять SIM-карту.",
        "Seara coada e uriașă: {minutes} doar ca să schimb cartela SIM.")),
    ("waiting", NEG, STORE, _t(
        "The electronic queue does not work, people argue about who is next.",
        "Электронная очередь не работает, люди спорят, кто за кем.",
        "Sistemul electronic de coadă nu funcționează, oamenii se ceartă cine urmează.")),
    ("waiting", NEG, STORE, _t(
        "Too few consultants for so many people: {minutes} of waiting.",
        "Консультантов слишком мало для такого количества людей: {minutes} ожидания.",
        "Prea puțini consultanți pentru atâția oameni: {minutes} de așteptare.")),
    ("waiting", NEG, REMOTE, _t(
        "I was on hold for {minutes} before anyone answered.",
        "На линии пришлось ждать {minutes}, прежде чем ответил оператор.",
        "Am așteptat la telefon {minutes} până mi-a răspuns cineva.")),
    ("waiting", NEG, REMOTE, _t(
        "The chat bot kept sending me round in circles before I reached a person.",
        "Чат-бот гонял меня по кругу, прежде чем подключился живой человек.",
        "Chatbotul m-a tot purtat în cerc până am ajuns la un om.")),
    ("waiting", NEG, FIELD, _t(
        "The technician arrived three hours late and nobody warned me.",
        "Мастер опоздал на три часа, и никто не предупредил.",
        "Tehnicianul a întârziat trei ore și nimeni nu m-a anunțat.")),
    ("waiting", MID, ANY, _t(
        "I had to wait a bit, but then everything went quickly.",
        "Пришлось немного подождать, но потом всё сделали быстро.",
        "A trebuit să aștept puțin, dar apoi totul s-a făcut repede.")),
    ("waiting", MID, ANY, _t(
        "The wait could be shorter; otherwise fine.",
        "Ожидание могло бы быть и короче, а так всё нормально.",
        "Așteptarea ar putea fi mai scurtă, în rest e bine.")),
    ("waiting", POS, STORE, _t(
        "No queue at all, I was served straight away.",
        "Очереди не было совсем, обслужили сразу.",
        "Nu era deloc coadă, m-au servit imediat.")),
    ("waiting", POS, REMOTE, _t(
        "They answered within a minute, a pleasant surprise.",
        "Ответили меньше чем через минуту, приятно удивили.",
        "Mi-au răspuns în mai puțin de un minut, o surpriză plăcută.")),
    ("waiting", POS, ANY, _t(
        "Fast service, everything was done in ten minutes.",
        "Быстрое обслуживание, всё сделали за десять минут.",
        "Servire rapidă, totul a fost gata în zece minute.")),
    # price
    ("price", NEG, ANY, _t(
        "The price went up again and nobody warned us.",
        "Цену снова подняли и никого не предупредили.",
        "Prețul a crescut din nou și nimeni nu ne-a anunțat.")),
    ("price", NEG, ANY, _t(
        "Too expensive for what you get; other operators give more for less.",
        "Слишком дорого за такое качество, у других операторов больше за меньшие деньги.",
        "Prea scump pentru ce primești, alți operatori oferă mai mult pe bani mai puțini.")),
    ("price", NEG, ANY, _t(
        "The bill was higher than what they promised when I signed up.",
        "Счёт пришёл больше, чем обещали при подключении.",
        "Factura a venit mai mare decât mi s-a promis la conectare.")),
    ("price", MID, ANY, _t(
        "Prices are okay, but the promotions are hard to understand.",
        "Цены нормальные, но в акциях трудно разобраться.",
        "Prețurile sunt acceptabile, dar promoțiile sunt greu de înțeles.")),
    ("price", MID, ANY, _t(
        "Not cheap, but the quality is decent.",
        "Недёшево, но качество достойное.",
        "Nu e ieftin, dar calitatea e decentă.")),
    ("price", POS, ANY, _t(
        "Good value for money, especially the family plan.",
        "Хорошее соотношение цены и качества, особенно семейный тариф.",
        "Raport bun calitate-preț, mai ales la abonamentul pentru familie.")),
    ("price", POS, ANY, _t(
        "They found me a cheaper plan with more data.",
        "Подобрали тариф дешевле и с большим объёмом интернета.",
        "Mi-au găsit un abonament mai ieftin și cu mai mult trafic de internet.")),
    # quality of the service
    ("quality", NEG, ANY, _t(
        "They activated the wrong plan and I had to come back.",
        "Подключили не тот тариф, пришлось приходить ещё раз.",
        "Mi-au activat alt abonament și a trebuit să revin.")),
    ("quality", NEG, ANY, _t(
        "The new SIM card stopped working the next day.",
        "Новая SIM-карта на следующий день перестала работать.",
        "Cartela SIM nouă nu a mai funcționat a doua zi.")),
    ("quality", NEG, ANY, _t(
        "The paperwork took forever and they still misspelled my name.",
        "Оформление заняло целую вечность, и всё равно ошиблись в фамилии.",
        "Actele au durat o veșnicie și tot mi-au scris greșit numele.")),
    ("quality", MID, ANY, _t(
        "Everything was done, but I had to double-check it all.",
        "Всё сделали, но всё равно пришлось перепроверять.",
        "Totul s-a făcut, dar a trebuit să verific de două ori.")),
    ("quality", MID, ANY, _t(
        "Normal service, nothing special.",
        "Обычное обслуживание, ничего особенного.",
        "Servire obișnuită, nimic deosebit.")),
    ("quality", POS, ANY, _t(
        "Everything was set up correctly the first time.",
        "Всё настроили правильно с первого раза.",
        "Totul a fost configurat corect din prima.")),
    ("quality", POS, ANY, _t(
        "Quick, clear and without unnecessary paperwork.",
        "Быстро, понятно и без лишних бумаг.",
        "Rapid, clar și fără hârtii inutile.")),
    ("quality", POS, ANY, _t(
        "The service is always at a high level.",
        "Обслуживание всегда на высоте.",
        "Servirea este mereu la un nivel înalt.")),
    # resolution (support)
    ("resolution", NEG, ANY, _t(
        "The problem is still not solved after three calls.",
        "Проблема так и не решена после трёх звонков.",
        "Problema tot nu e rezolvată după trei apeluri.")),
    ("resolution", NEG, ANY, _t(
        "They promised to call back and never did.",
        "Обещали перезвонить и не перезвонили.",
        "Au promis că mă sună înapoi și nu au mai sunat.")),
    ("resolution", NEG, ANY, _t(
        "The internet still drops every evening, and nobody knows why.",
        "Интернет по-прежнему пропадает каждый вечер, и никто не знает почему.",
        "Internetul tot cade în fiecare seară și nimeni nu știe de ce.")),
    ("resolution", NEG, FIELD, _t(
        "{Who} came without the right equipment and had to be called out again.",
        "{Who} пришёл без нужного оборудования, пришлось вызывать ещё раз.",
        "{Who} a venit fără echipamentul necesar și a trebuit chemat din nou.")),
    ("resolution", MID, ANY, _t(
        "The problem was solved, but only at the second attempt.",
        "Проблему решили, но только со второго раза.",
        "Problema a fost rezolvată, dar abia a doua oară.")),
    ("resolution", MID, ANY, _t(
        "It works now; we'll see for how long.",
        "Сейчас работает, посмотрим, надолго ли.",
        "Acum funcționează, vom vedea pentru cât timp.")),
    ("resolution", POS, REMOTE, _t(
        "The problem was solved in a single call.",
        "Проблему решили за один звонок.",
        "Problema a fost rezolvată dintr-un singur apel.")),
    ("resolution", POS, ANY, _t(
        "Everything works again, thank you for the quick help.",
        "Всё снова работает, спасибо за быструю помощь.",
        "Totul funcționează din nou, mulțumesc pentru ajutorul rapid.")),
    ("resolution", POS, FIELD, _t(
        "{Who} did not leave until everything worked.",
        "{Who} не ушёл, пока всё не заработало.",
        "{Who} nu a plecat până nu a funcționat totul.")),
    # network
    ("network", NEG, ANY, _t(
        "No signal at all at my home outside the city.",
        "За городом у меня дома вообще нет сигнала.",
        "Acasă, în afara orașului, nu am deloc semnal.")),
    ("network", NEG, ANY, _t(
        "Mobile internet is very slow in the evenings.",
        "Мобильный интернет по вечерам очень медленный.",
        "Internetul mobil e foarte lent seara.")),
    ("network", NEG, ANY, _t(
        "Calls keep dropping in the town centre.",
        "В центре города постоянно обрываются звонки.",
        "În centrul orașului apelurile se întrerup mereu.")),
    ("network", MID, ANY, _t(
        "Coverage is fine in town, weak in the villages.",
        "В городе связь хорошая, в сёлах слабая.",
        "În oraș acoperirea e bună, la sate e slabă.")),
    ("network", MID, ANY, _t(
        "The internet is usually fine, sometimes it slows down.",
        "Интернет обычно в порядке, иногда тормозит.",
        "Internetul merge de obicei bine, uneori încetinește.")),
    ("network", POS, ANY, _t(
        "Fast fibre at home, never had a problem.",
        "Дома быстрый оптоволоконный интернет, проблем не было ни разу.",
        "Acasă am fibră rapidă și nu am avut nicio problemă.")),
    ("network", POS, ANY, _t(
        "Good signal even in the countryside.",
        "Хорошая связь даже на даче.",
        "Semnal bun chiar și la țară.")),
    # the app
    ("app", NEG, ANY, _t(
        "The app keeps logging me out and the bill does not load.",
        "Приложение постоянно выкидывает из аккаунта, а счёт не загружается.",
        "Aplicația mă deconectează mereu, iar factura nu se încarcă.")),
    ("app", NEG, STORE, _t(
        "I could not pay in the app, so I had to come to the store.",
        "Не получилось оплатить в приложении, пришлось идти в салон.",
        "Nu am reușit să plătesc în aplicație, așa că a trebuit să vin la magazin.")),
    ("app", MID, ANY, _t(
        "The app is convenient, but the plan details are hard to find.",
        "Приложение удобное, но подробности тарифа найти сложно.",
        "Aplicația e comodă, dar detaliile abonamentului sunt greu de găsit.")),
    ("app", MID, ANY, _t(
        "The chat in the app works, but the answers are slow.",
        "Чат в приложении работает, но отвечают медленно.",
        "Chatul din aplicație funcționează, dar răspunsurile vin greu.")),
    ("app", POS, STORE, _t(
        "{Who} helped me set up the app; now I pay everything in two taps.",
        "{Who} помог настроить приложение, теперь плачу всё в два клика.",
        "{Who} m-a ajutat să configurez aplicația, acum plătesc totul din două clicuri.")),
    ("app", POS, ANY, _t(
        "The app is great: I see my balance and pay the bill in a minute.",
        "Приложение отличное: вижу баланс и оплачиваю счёт за минуту.",
        "Aplicația e excelentă: îmi văd soldul și plătesc factura într-un minut.")),
    ("app", POS, ANY, _t(
        "It was easy to reach you through the chat in the app.",
        "Через чат в приложении связаться было легко.",
        "Prin chatul din aplicație v-am contactat ușor.")),
    # general
    ("general", NEG, ANY, _t(
        "I expected much better service from a big company.",
        "От крупной компании ожидаешь гораздо лучшего сервиса.",
        "De la o companie mare te aștepți la o servire mult mai bună.")),
    ("general", NEG, ANY, _t(
        "I am thinking about switching to another operator.",
        "Думаю перейти к другому оператору.",
        "Mă gândesc să trec la alt operator.")),
    ("general", MID, ANY, _t(
        "Everything was okay, nothing to complain about and nothing to praise.",
        "Всё нормально, ни жаловаться, ни хвалить не за что.",
        "Totul a fost în regulă, nici de lăudat, nici de reproșat.")),
    ("general", MID, ANY, _t(
        "Fine overall, but there is room for improvement.",
        "В целом неплохо, но есть что улучшить.",
        "În general e bine, dar mai sunt lucruri de îmbunătățit.")),
    ("general", POS, ANY, _t(
        "Everything was great, I will recommend you to my friends.",
        "Всё отлично, буду рекомендовать друзьям.",
        "Totul a fost excelent, vă voi recomanda prietenilor.")),
    ("general", POS, ANY, _t(
        "I have been with you for ten years and everything suits me.",
        "Пользуюсь вашими услугами уже десять лет, и всё устраивает.",
        "Folosesc serviciile voastre de zece ani și totul mă mulțumește.")),
    ("general", POS, ANY, _t(
        "Thank you, everything was quick and pleasant.",
        "Спасибо, всё было быстро и приятно.",
        "Mulțumesc, totul a fost rapid și plăcut.")),
)  # fmt: skip
WHO = {
    STORE: _t("The consultant", "Консультант", "Consultantul"),
    REMOTE: _t("The operator", "Оператор", "Operatorul"),
    FIELD: _t("The technician", "Мастер", "Tehnicianul"),
}
OPENERS = {"en": ("Hello. ", "Good afternoon. "), "ru": ("Здравствуйте. ", "Добрый день! "),
           "ro": ("Bună ziua. ", "Salut. ")}  # fmt: skip
CLOSERS = {
    NEG: _t(" Please do something about it.", " Примите меры, пожалуйста.",
            " Vă rog să luați măsuri."),
    MID: _t(" Overall, fine.", " В целом нормально.", " În rest, totul e în regulă."),
    POS: _t(" Thank you!", " Спасибо!", " Mulțumesc!"),
}  # fmt: skip
# The topic a reason leads a comment to, per survey.
TOPICS = (
    ("staff", "waiting", "price", "quality", "app"),
    ("waiting", "staff", "resolution", "app", "general"),
    ("network", "price", "quality", "app", "general"),
)


def minutes_text(language: str, minutes: int) -> str:
    """ "25 minutes" as each language says it (Romanian puts "de" before 20 and more)."""
    if language == "ru":
        return f"{minutes} минут"  # the waits are multiples of five: always the genitive plural
    if language == "ro":
        return f"{minutes} de minute" if minutes >= 20 else f"{minutes} minute"
    return f"{minutes} minutes"


class CommentBook:
    """The templates indexed by (topic, sentiment, context) for quick picks."""

    def __init__(self) -> None:
        self.choices: dict[tuple[str, str, str], list[int]] = {}
        topics = {t[0] for t in TEMPLATES}
        for topic, sentiment, context in itertools.product(
            topics, SENTIMENTS, (STORE, REMOTE, FIELD, NOWHERE)
        ):
            fits = [
                i
                for i, (top, sen, where, _) in enumerate(TEMPLATES)
                if top == topic
                and sen == sentiment
                and (where in (ANY, context) or (where == "staffed" and context in STAFFED))
            ]
            if fits:
                self.choices[(topic, sentiment, context)] = fits

    def sentence(
        self, topic: str, sentiment: str, context: str, language: str, u: float, minutes: int
    ) -> str:
        fits = (
            self.choices.get((topic, sentiment, context))
            or self.choices[("general", sentiment, context)]
        )
        text = TEMPLATES[fits[int(u * len(fits)) % len(fits)]][3][language]
        if "{" in text:
            who = WHO.get(context, WHO[STORE])[language]
            text = text.replace("{Who}", who).replace("{minutes}", minutes_text(language, minutes))
        return text


COMMENTS = CommentBook()

# --- the step -------------------------------------------------------------------------------


@dataclass
class Candidates:
    """Interactions that may be invited, as arrays; see SurveyStep.collect."""

    pk: IntArray
    customer: IntArray
    slot: IntArray
    evaluated: IntArray
    scheduled: IntArray
    delivery: IntArray
    touchpoint: IntArray
    branch: IntArray
    employee: IntArray
    product: IntArray
    channel: IntArray
    day: IntArray
    hour: IntArray
    wait: IntArray

    def take(self, rows: IntArray | npt.NDArray[np.bool_]) -> Candidates:
        return Candidates(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @classmethod
    def join(cls, parts: Sequence[Candidates]) -> Candidates:
        if not parts:
            return cls(**{f.name: np.zeros(0, dtype=np.int64) for f in fields(cls)})
        return cls(**{
            f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)
        })  # fmt: skip


@dataclass
class Sends:
    """Invitations to write, one row per index, in the order they were sent."""

    slot: IntArray
    customer: IntArray
    interaction: IntArray  # database id, -1 for a wave's
    evaluated: IntArray
    scheduled: IntArray
    delivery: IntArray
    bounce: npt.NDArray[np.bool_]
    touchpoint: IntArray  # indices as in Org, -1 for none
    branch: IntArray
    employee: IntArray
    product: IntArray
    channel: IntArray
    day: IntArray
    hour: IntArray
    wait: IntArray


class SurveyStep:
    """Creates the surveys, then decides per chunk of interactions, then writes the rest.

    ``collect`` is called with every chunk of interactions just written, ``finish`` once at
    the end; both write through the generator's ``RowWriter``.
    """

    def __init__(
        self,
        workspace: Workspace,
        options: DemoOptions,
        org: Org,
        people: Population | None,
        timeline: Timeline,
        writer: RowWriter,
    ) -> None:
        self.workspace = workspace
        self.options = options
        self.org = org
        self.people = people
        self.timeline = timeline
        self.writer = writer
        self.now = int(clock.now().timestamp())
        self.surveys = self._create_surveys()
        self.rules: list[Rules] = [parse_rules(s.rules) for s in self.surveys]
        n_tp = len(org.touchpoint_pk)
        self.tp_slot = np.full(n_tp, -1, dtype=np.int64)
        self.tp_slot[org.touchpoint_index[STORE_VISIT]] = AFTER_VISIT
        for code in SUPPORT_TOUCHPOINTS:
            self.tp_slot[org.touchpoint_index[code]] = SUPPORT
        for spec in TYPES:
            surveyed = any(self.tp_slot[org.touchpoint_index[c]] >= 0 for c, _ in spec.touchpoints)
            if surveyed and spec.source != "crm":
                raise RuntimeError("surveyed touchpoints must come from the CRM (see collect)")
        self.surveyed_pks = sorted(
            int(org.touchpoint_pk[i]) for i in np.flatnonzero(self.tp_slot >= 0)
        )
        self.parts: list[Candidates] = []
        self.decisions = 0

    # --- the surveys ---

    def _create_surveys(self) -> list[Survey]:
        company = self.workspace.name
        specs = (
            (CODES[AFTER_VISIT], "After a store visit", SurveyKind.TRANSACTIONAL,
             default_definition(company), AFTER_VISIT_RULES),
            (CODES[SUPPORT], "Support satisfaction", SurveyKind.TRANSACTIONAL,
             support_definition(company), SUPPORT_RULES),
            (CODES[RELATIONSHIP], "Relationship NPS", SurveyKind.RELATIONSHIP,
             relationship_definition(company), RELATIONSHIP_RULES),
        )  # fmt: skip
        return [
            save_survey(
                self.workspace,
                code=code,
                name=name,
                kind=kind,
                definition=definition,
                rules=rules,
                via="cli",
            )
            for code, name, kind, definition, rules in specs
        ]

    # --- per chunk of interactions ---

    def _interaction_ids(self, first: int, last: int) -> IntArray:
        """Ids of the chunk's interactions at surveyed touchpoints, in number order (all of
        them come from the CRM, whose external ids are the numbers, zero-padded)."""
        table = connection.ops.quote_name(Interaction._meta.db_table)
        marks = ", ".join(["%s"] * len(self.surveyed_pks))
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {table} WHERE workspace_id = %s AND source = 'crm' "
                f"AND external_id >= %s AND external_id <= %s AND touchpoint_id IN ({marks}) "
                "ORDER BY external_id",
                [self.workspace.pk, f"CRM-{first:09d}", f"CRM-{last:09d}", *self.surveyed_pks],
            )
            return np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)

    def _send_times(
        self, slot: IntArray, evaluated: IntArray, day: IntArray, hour: IntArray, jitter: IntArray
    ) -> IntArray:
        """When the rules send: after the delay, inside the send window (local time)."""
        out = evaluated.copy()
        offset = self.timeline.offset[day, hour]
        for s in (AFTER_VISIT, SUPPORT):
            rows = slot == s
            rules = self.rules[s]
            at = evaluated[rows] + rules.delay_minutes * 60
            window = rules.send_window
            if window is not None:
                local = at + offset[rows]
                second = local % 86400
                start = window.start.hour * 3600 + window.start.minute * 60
                end = window.end.hour * 3600 + window.end.minute * 60
                local = np.where(second < start, local - second + start, local)
                local = np.where(second >= end, local - second + 86400 + start, local)
                at = local - offset[rows]
            out[rows] = at + jitter[rows]
        return out

    def collect(self, chunk_no: int, drawn: DrawnChunk) -> None:
        """Decide what needs no history (no address or consent, sampled out) and keep the
        rest for ``finish``; called with each chunk right after it is written."""
        people = self.people
        slot = self.tp_slot[drawn.touchpoint]
        rows = np.flatnonzero(slot >= 0)
        if people is None or not len(rows):
            return
        rng = np.random.default_rng([self.options.seed, SURVEY_STREAM, 1, chunk_no])
        n = len(rows)
        sample = rng.random(n)
        evaluate_after = rng.integers(20, 180, n)
        jitter = rng.integers(5, 240, n)
        ids = self._interaction_ids(int(drawn.numbers[0]), int(drawn.numbers[-1]))
        if len(ids) != n:
            raise RuntimeError("interaction ids do not match the rows written")
        slot = slot[rows]
        customer = drawn.customer[rows]
        evaluated = drawn.utc[rows] + evaluate_after
        scheduled = self._send_times(slot, evaluated, drawn.day[rows], drawn.hour[rows], jitter)
        delivery, reason, detail = _channel_choice(people.reach[customer])
        rate = np.array([r.sampling_rate for r in self.rules])[slot]
        sampled_out = (delivery >= 0) & (sample >= rate)
        # An invitation the demo would have to send after now is left to no one: the demo
        # never sends e-mails. The interaction then has no decision, like one not yet seen.
        past = scheduled < self.now
        skipped = past & ((delivery < 0) | sampled_out)
        if skipped.any():
            which = np.flatnonzero(skipped)
            rate_text = np.array([f"sampling rate {r.sampling_rate:.0%}" for r in self.rules])
            self._write_decisions(
                slot[which], customer[which], ids[which], evaluated[which],
                np.full(len(which), -1, dtype=np.int64), DecisionOutcome.SKIPPED,
                np.where(sampled_out[which], Reason.SAMPLED_OUT, reason[which]),
                np.where(sampled_out[which], rate_text[slot[which]], detail[which]),
            )  # fmt: skip
        keep = past & (delivery >= 0) & ~sampled_out
        r = rows[keep]
        # Small integers: these are kept until the end, a few per customer.
        small, tiny = np.int16, np.int8
        self.parts.append(Candidates(
            pk=ids[keep], customer=customer[keep].astype(np.int32),
            slot=slot[keep].astype(tiny), evaluated=evaluated[keep],
            scheduled=scheduled[keep], delivery=delivery[keep].astype(tiny),
            touchpoint=drawn.touchpoint[r].astype(small), branch=drawn.branch[r].astype(small),
            employee=drawn.employee[r].astype(small), product=drawn.product[r].astype(small),
            channel=drawn.channel[r].astype(small), day=drawn.day[r].astype(small),
            hour=drawn.hour[r].astype(tiny), wait=drawn.wait[r].astype(small),
        ))  # fmt: skip

    # --- at the end ---

    def finish(self, progress: Progress) -> dict[str, int]:
        """Apply the fatigue rules in time order, run the wave, draw the funnel and the
        answers, and write invitations, responses and decisions; returns the counts."""
        counts = {"surveys": len(self.surveys)}
        people = self.people
        if people is None:
            return counts
        seed = self.options.seed
        candidates = Candidates.join(self.parts)
        self.parts = []
        order = np.lexsort((candidates.pk, candidates.evaluated))
        candidates = candidates.take(order)
        n_customers = len(people.pk)
        rng = np.random.default_rng([seed, SURVEY_STREAM, 2])
        self.disposition = rng.normal(0.0, CUSTOMER_SPREAD, n_customers)
        propensity = np.exp(rng.normal(0.0, 0.5, n_customers))
        self.propensity = propensity / propensity.mean()
        self.bad_email = rng.random(n_customers) < BAD_EMAIL_SHARE
        n_accounts = int(people.account.max()) + 1 if len(people.account) else 0
        silent = rng.random(max(n_accounts, 1)) < SILENT_ACCOUNT_SHARE
        span = self.timeline.days * 86400
        start = int(self.timeline.day_base[0])
        silent_from = start + (0.55 + 0.25 * rng.random(max(n_accounts, 1))) * span
        self.silent_from = np.where(silent, silent_from, np.inf)

        wave_at = self._wave_time()
        outcome, delivery, bounce, blocker, wave = self._ration(candidates, wave_at)
        progress.start(
            "surveys", int((outcome == INVITED).sum()) + (len(wave.sends.customer) if wave else 0)
        )
        self._write_skips(candidates, outcome, blocker)

        invited = np.flatnonzero(outcome == INVITED)
        c = candidates.take(invited)
        sends = Sends(
            slot=c.slot, customer=c.customer, interaction=c.pk, evaluated=c.evaluated,
            scheduled=c.scheduled, delivery=delivery[invited], bounce=bounce[invited],
            touchpoint=c.touchpoint, branch=c.branch, employee=c.employee, product=c.product,
            channel=c.channel, day=c.day, hour=c.hour, wait=c.wait,
        )  # fmt: skip
        wave_row = None
        if wave is not None:
            wave_row = self._wave_row(wave_at, wave)
            sends = _concat(sends, wave.sends)
            counts["survey waves"] = 1
        order = np.lexsort((sends.interaction, sends.scheduled))
        sends = Sends(**{f.name: getattr(sends, f.name)[order] for f in fields(sends)})
        written, answered = self._write_sends(sends, wave_row, progress)
        counts["invitations"] = written
        counts["responses"] = answered
        counts["survey decisions"] = self.decisions
        self._flag_silent_accounts()
        return counts

    def planted(self) -> dict[str, list[str]]:
        """Where the patterns planted in the answers are, for the summary, docs and tests."""
        _, standout, poor = self._employee_effects()
        pks = self.org.employee_pk
        codes = dict(
            Employee.objects.filter(pk__in=pks[standout | poor].tolist()).values_list("pk", "code")
        )
        fix = self.timeline.first_day + dt.timedelta(days=int(self.timeline.days * WAITING_FIX_AT))
        return {
            "better branches": [c for c, e in BRANCH_EFFECT.items() if e > 0],
            "worse branches": [c for c, e in BRANCH_EFFECT.items() if e < 0],
            "queue problem": [WAITING_BRANCH, f"fixed on {fix}"],
            "standout employees": [codes[int(pk)] for pk in pks[standout]],
            "poor employees": [codes[int(pk)] for pk in pks[poor]],
        }

    # --- the pass in time order ---

    def _wave_time(self) -> int | None:
        """10:00 local on the Tuesday after WAVE_AT of the history, if it is in the past."""
        timeline = self.timeline
        day = int(timeline.days * WAVE_AT)
        while day < timeline.days - 1 and timeline.weekday[day] != 1:
            day += 1
        at = int(timeline.day_base[day] + 10 * 3600 - timeline.offset[day, 10])
        return at if at + WAVE_SPREAD_S < self.now else None

    def _ration(
        self, cand: Candidates, wave_at: int | None
    ) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_], IntArray, WaveDraw | None]:
        """The quiet period (all surveys) and each survey's limit per customer, applied to the
        candidates in the order the trigger would have met them, with the wave in between.

        Returns per candidate: outcome, the channel used, whether it bounced, and for a skip
        what blocked it (the time and survey of the invitation in the way, or the count).
        """
        people = self.people
        assert people is not None
        n = len(cand.pk)
        n_customers = len(people.pk)
        never = -(10**12)
        last = [never] * n_customers
        last_slot = [0] * n_customers
        bounced = [False] * n_customers
        sms_ok = ((people.reach & (REACH_PHONE | REACH_SMS_CONSENT)) ==
                  (REACH_PHONE | REACH_SMS_CONSENT)).tolist()  # fmt: skip
        bad = self.bad_email.tolist()
        quiet = [r.quiet_period_days * 86400 for r in self.rules]
        window = [r.max_period_days * 86400 for r in self.rules]
        limit = [r.max_per_customer for r in self.rules]
        # Each survey's own invitations per customer: the last one where the limit is one per
        # period (the default: a list per customer would cost more memory than the customers).
        latest = [[never] * n_customers if m == 1 else [] for m in limit]
        history: dict[int, list[int]] = {}
        outcome = np.zeros(n, dtype=np.int64)
        delivery = cand.delivery.copy()
        bounce = np.zeros(n, dtype=np.bool_)
        blocker = np.zeros((n, 2), dtype=np.int64)
        wave: WaveDraw | None = None
        evaluated, customers = cand.evaluated.tolist(), cand.customer.tolist()
        slots, scheduled, channels = cand.slot.tolist(), cand.scheduled.tolist(), delivery.tolist()
        for i in range(n):
            if wave_at is not None and wave is None and evaluated[i] >= wave_at:
                wave = self._draw_wave(wave_at, last, last_slot, bounced)
            c, s, send, ch = customers[i], slots[i], scheduled[i], channels[i]
            if ch == EMAIL and bounced[c]:
                if not sms_ok[c]:
                    outcome[i] = BOUNCED
                    continue
                ch = SMS
            previous = last[c]
            if abs(send - previous) < quiet[s]:
                outcome[i] = QUIET
                blocker[i] = previous, last_slot[c]
                continue
            if limit[s] == 1:
                if send - latest[s][c] < window[s]:
                    outcome[i] = LIMITED
                    blocker[i] = 1, s
                    continue
                latest[s][c] = send
            else:
                times = history.setdefault(c * 4 + s, [])
                count = sum(1 for t in times if send - t < window[s])
                if count >= limit[s]:
                    outcome[i] = LIMITED
                    blocker[i] = count, s
                    continue
                times.append(send)
            last[c], last_slot[c] = send, s
            delivery[i] = ch
            if ch == EMAIL and bad[c]:
                bounced[c] = True
                bounce[i] = True
        if wave_at is not None and wave is None:
            wave = self._draw_wave(wave_at, last, last_slot, bounced)
        return outcome, delivery, bounce, blocker, wave

    def _write_skips(self, cand: Candidates, outcome: IntArray, blocker: IntArray) -> None:
        """The skips of the pass in time order, with the details the trigger writes."""
        people = self.people
        assert people is not None
        skipped = np.flatnonzero(outcome != INVITED)
        if not len(skipped):
            return
        days = np.datetime_as_string(blocker[skipped, 0].astype("datetime64[s]"), unit="D")
        sms_reach = people.reach[cand.customer[skipped]] & REACH_PHONE
        details: list[str] = []
        reasons: list[str] = []
        rows = zip(
            outcome[skipped].tolist(), days.tolist(), blocker[skipped].tolist(),
            cand.slot[skipped].tolist(), sms_reach.tolist(), strict=True,
        )  # fmt: skip
        for o, day, (count, other), s, phone in rows:
            rules = self.rules[s]
            if o == QUIET:
                reasons.append(Reason.QUIET_PERIOD.value)
                details.append(
                    f"invited {day} ({CODES[other]}); quiet period {rules.quiet_period_days} days"
                )
            elif o == LIMITED:
                reasons.append(Reason.SURVEY_LIMIT.value)
                details.append(
                    f"{count} in {rules.max_period_days} days (limit {rules.max_per_customer})"
                )
            else:
                reasons.append(Reason.BOUNCED.value)
                details.append(
                    f"email: address bounced; sms: {'no consent' if phone else 'no address'}"
                )
        reason, detail = np.array(reasons), np.array(details)
        c = cand.take(skipped)
        for part in _slices(len(skipped), self.options.chunk_size):
            self._write_decisions(
                c.slot[part], c.customer[part], c.pk[part], c.evaluated[part],
                np.full(part.stop - part.start, -1, dtype=np.int64), DecisionOutcome.SKIPPED,
                reason[part], detail[part],
            )  # fmt: skip

    # --- the relationship wave ---

    def _draw_wave(
        self, at: int, last: list[int], last_slot: list[int], bounced: list[bool]
    ) -> WaveDraw:
        """A sample of 8 % of the customers, stratified by segment, among those the rules
        allow (reachable, out of the quiet period); marks them invited in ``last``."""
        people = self.people
        assert people is not None
        rng = np.random.default_rng([self.options.seed, SURVEY_STREAM, 3])
        rules = self.rules[RELATIONSHIP]
        n_customers = len(people.pk)
        keys = rng.random(n_customers)
        spread = rng.integers(0, WAVE_SPREAD_S, n_customers)
        last_a = np.array(last, dtype=np.int64)
        gone = np.array(bounced, dtype=np.bool_)
        delivery, _, _ = _channel_choice(people.reach)
        delivery = np.where((delivery == EMAIL) & gone, _sms_or_none(people.reach), delivery)
        quiet = np.abs(at - last_a) < rules.quiet_period_days * 86400
        eligible = (delivery >= 0) & ~quiet
        size = min(round(WAVE_SHARE * n_customers), int(eligible.sum()))
        strata = people.segment.astype(np.int64)
        population = np.bincount(strata[eligible], minlength=len(SEGMENTS))
        shares = _allocate(population, size)
        chosen = np.zeros(n_customers, dtype=np.bool_)
        for s, k in enumerate(shares.tolist()):
            members = np.flatnonzero(eligible & (strata == s))
            if k:
                chosen[members[np.argsort(keys[members], kind="stable")[:k]]] = True
        who = np.flatnonzero(chosen)
        send = at + spread[who]
        bounce = (delivery[who] == EMAIL) & self.bad_email[who] & ~gone[who]
        for c, t, b in zip(who.tolist(), send.tolist(), bounce.tolist(), strict=True):
            last[c], last_slot[c] = t, RELATIONSHIP
            if b:
                bounced[c] = True
        none = np.full(len(who), -1, dtype=np.int64)
        sends = Sends(
            slot=np.full(len(who), RELATIONSHIP, dtype=np.int64), customer=who, interaction=none,
            evaluated=np.full(len(who), at - 3600, dtype=np.int64), scheduled=send,
            delivery=delivery[who], bounce=bounce, touchpoint=none, branch=none, employee=none,
            product=none, channel=none, day=none, hour=none, wait=none,
        )  # fmt: skip
        return WaveDraw(at, population, shares, sends)

    def _wave_row(self, at: int | None, wave: WaveDraw) -> Wave:
        assert at is not None
        target = round(len(wave.sends.customer) * WAVE_RESPONSE_RATE)
        margin = 100 * 1.96 * np.sqrt(0.75 / max(target, 1))
        row = Wave.objects.create(
            workspace=self.workspace, survey=self.surveys[RELATIONSHIP], strata="segment",
            margin=round(float(margin), 1), confidence=0.95, response_rate=WAVE_RESPONSE_RATE,
            population=int(wave.population.sum()), target_responses=target,
            sample_size=len(wave.sends.customer),
            allocation={
                SEGMENTS[s]: {"population": int(p), "sample": int(k)}
                for s, (p, k) in enumerate(zip(wave.population, wave.shares, strict=True))
                if p
            },
            seed=self.options.seed,
        )  # fmt: skip
        created = dt.datetime.fromtimestamp(at - 3600, dt.UTC)
        Wave.objects.filter(pk=row.pk).update(created_at=created)
        return row

    # --- invitations, responses, decisions ---

    def _write_sends(self, sends: Sends, wave: Wave | None, progress: Progress) -> tuple[int, int]:
        people = self.people
        assert people is not None
        rng = np.random.default_rng([self.options.seed, SURVEY_STREAM, 4])
        n = len(sends.customer)
        if not n:
            return 0, 0
        funnel = self._funnel(rng, sends)
        answers = self._answers(rng, sends)
        writer = self.writer
        survey_pk = np.array([s.pk for s in self.surveys], dtype=np.int64)
        org = self.org
        ref = {
            "branch_id": org.branch_pk, "employee_id": org.employee_pk,
            "product_id": org.product_pk, "channel_id": org.channel_pk,
            "touchpoint_id": org.touchpoint_pk,
        }  # fmt: skip
        references = {
            "branch_id": sends.branch, "employee_id": sends.employee,
            "product_id": sends.product, "channel_id": sends.channel,
            "touchpoint_id": sends.touchpoint,
        }  # fmt: skip
        language = np.array(LANGUAGES)[people.language[sends.customer]]
        delivery_text = np.array(DELIVERY)[sends.delivery]
        responses = 0
        last_id = 0
        answered_rows = np.flatnonzero(funnel.answered >= 0)
        response_number = np.full(n, -1, dtype=np.int64)
        response_number[answered_rows] = np.arange(1, len(answered_rows) + 1)
        for part in _slices(n, self.options.chunk_size):
            k = part.stop - part.start
            tokens = [new_token() for _ in range(k)]
            values: dict[str, Any] = {
                "workspace_id": itertools.repeat(self.workspace.pk),
                "survey_id": survey_pk[sends.slot[part]].tolist(),
                "customer_id": people.pk[sends.customer[part]].tolist(),
                "interaction_id": _nullable(sends.interaction[part]),
                "wave_id": [wave.pk if wave is not None and s == RELATIONSHIP else None
                            for s in sends.slot[part].tolist()],
                "token": tokens,
                "delivery_channel": delivery_text[part].tolist(),
                "language": language[part].tolist(),
                "status": itertools.repeat(InvitationStatus.SENT.value),
                "scheduled_for": writer.timestamps(sends.scheduled[part]),
                "expires_at": writer.timestamps(funnel.expires[part]),
                "queued_at": writer.timestamps(sends.scheduled[part]),
                "claimed_at": writer.timestamps(funnel.sent[part] - 1),
                "attempts": itertools.repeat(1),
                # What the provider returned; unique across workspaces, as webhooks look
                # invitations up by it.
                "message_id": [f"demo.{self.workspace.pk}.{i}@mail.example"
                               for i in range(part.start + 1, part.stop + 1)],
                "sent_at": writer.timestamps(funnel.sent[part]),
                "reminder_due_at": _stamps(writer, funnel.reminder_due[part]),
                "reminder_sent_at": _stamps(writer, funnel.reminded[part]),
                "delivered_at": _stamps(writer, funnel.delivered[part]),
                "opened_at": _stamps(writer, funnel.opened[part]),
                "clicked_at": _stamps(writer, funnel.clicked[part]),
                "answered_at": _stamps(writer, funnel.answered[part]),
                "bounced_at": _stamps(writer, funnel.bounced[part]),
                "created_at": writer.timestamps(sends.evaluated[part]),
            }  # fmt: skip
            for column, index in references.items():
                values[column] = _nullable_ref(ref[column], index[part])
            columns, rows = _table(Invitation, values, writer)
            writer.write(Invitation, columns, rows)
            ids, last_id = self._invitation_ids(tokens, last_id)

            # Decisions: scheduled when the trigger (or the wave) decided, sent, reminded.
            slot, customer = sends.slot[part], sends.customer[part]
            interaction = sends.interaction[part]
            scheduled_text = np.char.add(
                np.char.add(delivery_text[part], " at "),
                np.char.add(np.char.replace(np.datetime_as_string(
                    sends.scheduled[part].astype("datetime64[s]"), unit="m"), "T", " "), " UTC"),
            )  # fmt: skip
            if wave is not None:
                scheduled_text = np.where(
                    slot == RELATIONSHIP, f"relationship wave {wave.pk}", scheduled_text
                )
            self._write_decisions(
                slot, customer, interaction, sends.evaluated[part], ids,
                DecisionOutcome.SCHEDULED, np.full(k, Reason.MATCHED.value), scheduled_text,
            )  # fmt: skip
            self._write_decisions(
                slot, customer, interaction, funnel.sent[part], ids, DecisionOutcome.SENT,
                np.full(k, Reason.DELIVERED.value), delivery_text[part],
            )  # fmt: skip
            reminded = np.flatnonzero(funnel.reminded[part] >= 0)
            if len(reminded):
                self._write_decisions(
                    slot[reminded], customer[reminded], interaction[reminded],
                    funnel.reminded[part][reminded], ids[reminded], DecisionOutcome.REMINDED,
                    np.full(len(reminded), Reason.DELIVERED.value),
                    delivery_text[part][reminded],
                )  # fmt: skip

            rows_answered = np.flatnonzero(funnel.answered[part] >= 0)
            if len(rows_answered):
                responses += self._write_responses(
                    sends, part.start + rows_answered, ids[rows_answered], funnel, answers,
                    response_number, language, survey_pk, ref, references,
                )  # fmt: skip
            progress.advance(k)
        self._write_bounces(sends, funnel)
        return n, responses

    def _invitation_ids(self, tokens: list[str], after: int) -> tuple[IntArray, int]:
        """Ids of the invitations just written, in the order of ``tokens`` (the workspace's
        invitations with an id above ``after`` are this chunk's: the demo writes alone)."""
        table = connection.ops.quote_name(Invitation._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, token FROM {table} WHERE workspace_id = %s AND id > %s",
                [self.workspace.pk, after],
            )
            found = dict((token, pk) for pk, token in cursor.fetchall())
        ids = np.array([found[t] for t in tokens], dtype=np.int64)
        return ids, int(ids.max()) if len(ids) else after

    def _write_decisions(
        self,
        slot: IntArray,
        customer: IntArray,
        interaction: IntArray,
        at: IntArray,
        invitation: IntArray,
        outcome: str,
        reason: npt.NDArray[Any],
        detail: npt.NDArray[Any],
    ) -> None:
        people = self.people
        assert people is not None
        survey_pk = np.array([s.pk for s in self.surveys], dtype=np.int64)
        values: dict[str, Any] = {
            "workspace_id": itertools.repeat(self.workspace.pk),
            "survey_id": survey_pk[slot].tolist(),
            "customer_id": people.pk[customer].tolist(),
            "interaction_id": _nullable(interaction),
            "invitation_id": _nullable(invitation),
            "outcome": itertools.repeat(str(outcome)),
            "reason": [str(r) for r in reason.tolist()],
            "detail": [str(d)[:300] for d in detail.tolist()],
            "created_at": self.writer.timestamps(at),
        }
        columns, rows = _table(Decision, values, self.writer)
        self.writer.write(Decision, columns, rows)
        self.decisions += len(rows)

    # --- the funnel ---

    def _funnel(self, rng: np.random.Generator, sends: Sends) -> Funnel:
        """Delivery, open, click and answer times (-1: did not happen, or not yet by now)."""
        people = self.people
        assert people is not None
        n = len(sends.customer)
        email = sends.delivery == EMAIL
        sent = sends.scheduled + rng.integers(2, 90, n)
        delivered_ok = ~sends.bounce & (rng.random(n) < np.array(DELIVERED)[sends.delivery])
        delivered = sent + np.maximum(rng.lognormal(np.log(8), 0.8, n), 1).astype(np.int64)
        account = people.account[sends.customer]
        silent = (account >= 0) & (sent >= self.silent_from[np.maximum(account, 0)])
        responsive = (
            np.array(SURVEY_RESPONSIVENESS)[sends.slot]
            * np.where(people.b2b[sends.customer], B2B_RESPONSIVENESS, 1.0)
            * self.propensity[sends.customer]
        )
        u_open, u_click, u_answer = rng.random(n), rng.random(n), rng.random(n)
        p_first = np.where(email, OPENED_EMAIL, CLICKED_SMS) * responsive
        first = delivered_ok & (u_open < np.minimum(p_first, 0.95))
        first &= ~silent | (u_open < SILENT_OPENS * OPENED_EMAIL)
        clicked_ok = first & (~email | (u_click < CLICKED_OPENED)) & ~silent
        answered_ok = clicked_ok & (u_answer < np.array(ANSWERED_CLICKED)[sends.delivery])

        reminder_days = np.array([r.reminder_after_days or 0 for r in self.rules])[sends.slot]
        expiry_days = np.array([r.expiry_days for r in self.rules])[sends.slot]
        due = np.where(reminder_days > 0, sent + reminder_days * 86400, -1)
        late = (rng.random(n) < AFTER_REMINDER) & (due >= 0)
        soon = np.minimum(rng.lognormal(np.log(40 * 60), 1.4, n), 2.5 * 86400).astype(np.int64)
        after = rng.lognormal(np.log(60 * 60), 1.2, n).astype(np.int64)
        first_at = np.where(late, due + 60 + after, delivered + soon)
        click_at = np.where(email, first_at + 3 + rng.lognormal(np.log(25), 0.8, n).astype(
            np.int64), first_at)  # fmt: skip
        answer_at = click_at + 2 + rng.lognormal(np.log(20), 0.6, n).astype(np.int64)
        expires = sent + expiry_days * 86400
        now = self.now

        def happened(ok: npt.NDArray[np.bool_], at: IntArray) -> IntArray:
            return np.where(ok & (at < now) & (at < expires), at, -1)

        opened = happened(first, first_at)
        clicked = happened(clicked_ok & (opened >= 0), click_at)
        answered = happened(answered_ok & (clicked >= 0), answer_at)
        bounced = np.where(sends.bounce, sent + 30 + rng.integers(0, 600, n), -1)
        bounced = np.where(bounced < now, bounced, -1)
        delivered = happened(delivered_ok, delivered)
        # A reminder went to those who had not answered by its day; one still due is left
        # unscheduled, so that no demo invitation ever sends a real reminder.
        reminded = np.where(
            (due >= 0) & (due < now) & ((answered < 0) | (answered > due)) & (bounced < 0),
            due + rng.integers(0, 300, n), -1,
        )  # fmt: skip
        reminder_due = np.where(
            (due >= 0) & (bounced < 0) & ((due < now) | (answered >= 0)), due, -1
        )
        return Funnel(sent, delivered, opened, clicked, answered, bounced, reminder_due, reminded,
                      expires)  # fmt: skip

    def _write_bounces(self, sends: Sends, funnel: Funnel) -> None:
        """Bounced addresses are suppressed, as the provider's webhook would have done."""
        people = self.people
        assert people is not None
        rows = np.flatnonzero(funnel.bounced >= 0)
        if not len(rows):
            return
        pks = people.pk[sends.customer[rows]].tolist()
        emails = dict(Customer.objects.filter(pk__in=pks).values_list("pk", "email"))
        seen: set[str] = set()
        suppressions = []
        for pk, at in zip(pks, funnel.bounced[rows].tolist(), strict=True):
            address = (emails.get(pk) or "").lower()
            if not address or address in seen:
                continue
            seen.add(address)
            suppressions.append(Suppression(
                workspace=self.workspace, customer_id=pk, delivery_channel="email",
                address=address, reason=SuppressionReason.BOUNCED, source="webhook",
                created_at=dt.datetime.fromtimestamp(at, dt.UTC),
            ))  # fmt: skip
        Suppression.objects.bulk_create(suppressions, batch_size=1000)

    # --- the answers ---

    def _answers(self, rng: np.random.Generator, sends: Sends) -> Answers:
        """Scores, reasons, comments and call-back answers for every send (used where
        answered), drawn for all so that a row's answer does not depend on the others."""
        people = self.people
        assert people is not None
        org, timeline = self.org, self.timeline
        n = len(sends.customer)
        slot = sends.slot
        relationship = slot == RELATIONSHIP
        customer = sends.customer
        day = np.maximum(sends.day, 0)
        hour = np.maximum(sends.hour, 0)
        branch = sends.branch
        home = people.home[customer].astype(np.int64)
        branch_effect = np.zeros(len(BRANCHES))
        codes = [b[0] for b in BRANCHES]
        for code, effect in BRANCH_EFFECT.items():
            branch_effect[codes.index(code)] = effect
        waiting_branch = codes.index(WAITING_BRANCH)
        fix = int(timeline.days * WAITING_FIX_AT)
        recovery = np.clip((day - fix) / max(timeline.days - fix, 1), 0, 1)
        store_visit = (sends.channel >= 0) & (
            np.array([CHANNEL_KIND[c[0]] for c in CHANNELS])[np.maximum(sends.channel, 0)]
            == STORE_KIND
        )
        family = org.product_family[np.maximum(sends.product, 0)]
        main_family = org.product_family[people.main_product[customer].astype(np.int64)]
        family_effect = np.array([FAMILY_EFFECT[f] for f in FAMILIES])
        segment_effect = np.array([SEGMENT_EFFECT[s] for s in SEGMENTS])[people.segment[customer]]
        tp_effect = np.zeros(len(org.touchpoint_pk))
        for code, effect in TOUCHPOINT_EFFECT.items():
            tp_effect[org.touchpoint_index[code]] = effect
        employee_effect, standout, poor = self._employee_effects()
        employee = np.maximum(sends.employee, 0)
        has_employee = sends.employee >= 0

        mood = (
            BASE_MOOD
            + self.disposition[customer]
            + segment_effect
            + np.where(branch >= 0, branch_effect[np.maximum(branch, 0)], 0.0)
            + np.where(branch == waiting_branch, WAITING_BRANCH_EFFECT * (1 - recovery), 0.0)
            + np.where(store_visit, WAIT_EFFECT * np.clip(sends.wait - NORMAL_WAIT, -5, 35), 0.0)
            + np.array(WEEKDAY_EFFECT)[timeline.weekday[day]]
            + np.where(hour >= EVENING_HOUR, EVENING_EFFECT, 0.0)
            + np.where(has_employee, employee_effect[employee], 0.0)
            + np.where(sends.product >= 0, family_effect[family], 0.0)
            + np.where(sends.touchpoint >= 0, tp_effect[np.maximum(sends.touchpoint, 0)], 0.0)
        )
        mood_relationship = (
            RELATIONSHIP_MOOD + self.disposition[customer] + segment_effect
            + 0.4 * branch_effect[home] + family_effect[main_family]
        )  # fmt: skip
        mood = np.where(relationship, mood_relationship, mood)
        category = _categories(rng, mood)
        nps = _band_scores(rng, category, NPS_BANDS)
        csat = _band_scores(rng, category, CSAT_BANDS)
        score = np.where(slot == SUPPORT, csat, nps)

        # Reasons: weights by survey and category, more "waiting" after a long wait or in
        # the evening, more "staff" for the standout and the poor performers.
        weights = REASON_WEIGHTS[slot, category].copy()
        waiting_col = np.array(WAITING_REASON)[slot]
        staff_col = np.array(STAFF_REASON)[slot]
        rows = np.arange(n)
        longer = np.clip(sends.wait - NORMAL_WAIT, 0, 40) * np.where(store_visit, 0.06, 0.0)
        evening = (hour >= EVENING_HOUR) & ~relationship
        boost = np.where(category == PROMOTER, 0.0, longer + 0.6 * evening)
        has_waiting = waiting_col >= 0
        weights[rows[has_waiting], waiting_col[has_waiting]] += boost[has_waiting]
        staff_boost = np.where(
            has_employee & poor[employee] & (category == DETRACTOR), 2.0,
            np.where(has_employee & standout[employee] & (category == PROMOTER), 2.0, 0.0),
        )  # fmt: skip
        has_staff = staff_col >= 0
        weights[rows[has_staff], staff_col[has_staff]] += staff_boost[has_staff]
        first = _pick(rng, weights)
        second_weights = weights.copy()
        second_weights[rows, first] = 0.0
        second = _pick(rng, second_weights)
        u_reasons = rng.random(n)
        n_reasons = np.where(
            u_reasons < NO_REASON, 0, np.where(u_reasons < NO_REASON + SECOND_REASON, 2, 1)
        )

        # Comments, in the customer's language.
        commented = rng.random(n) < np.array(COMMENT_SHARE)[category]
        u_first, u_second, u_open, u_close = (rng.random(n) for _ in range(4))
        both = rng.random(n) < 0.4
        # The wait a comment complains about: the visit's own, rounded as people do (and at
        # least twenty minutes: nobody writes in about ten); on the phone, a guess.
        remote_minutes = rng.choice([20, 25, 30, 40, 45], n)
        minutes = np.where(store_visit, np.maximum(np.round(sends.wait / 5) * 5, 20),
                           remote_minutes).astype(np.int64)  # fmt: skip
        contact_answered = rng.random(n) < CALL_BACK_ANSWERED
        contact_yes = rng.random(n) < CALL_BACK_YES
        one_click = rng.random(n) < ONE_CLICK

        # Competitors: who else the customer uses, and how they rate them.
        uses = rng.random((n, len(COMPETITORS))) < np.array(COMPETITOR_USE)
        rated = rng.random((n, len(COMPETITORS))) < COMPETITOR_SCORED
        competitor_mood = np.array(COMPETITOR_MOOD)[None, :] + 0.5 * self.disposition[customer][
            :, None]  # fmt: skip
        competitor_category = _categories(rng, competitor_mood.ravel()).reshape(n, -1)
        competitor_score = _band_scores(rng, competitor_category.ravel(), NPS_BANDS).reshape(n, -1)

        kind = np.array([CHANNEL_KIND[c[0]] for c in CHANNELS])[np.maximum(sends.channel, 0)]
        context = np.where(
            relationship | (sends.channel < 0), NOWHERE,
            np.where(kind == STORE_KIND, STORE,
                     np.where(np.isin(kind, [PHONE_KIND, DIGITAL_KIND]), REMOTE, FIELD)),
        )  # fmt: skip
        return Answers(
            category=category, score=score, first=first, second=second, n_reasons=n_reasons,
            commented=commented, both=both, u_first=u_first, u_second=u_second, u_open=u_open,
            u_close=u_close, minutes=minutes, contact_answered=contact_answered,
            contact_yes=contact_yes, one_click=one_click, uses=uses, rated=rated,
            competitor_score=competitor_score, context=context,
        )  # fmt: skip

    def _employee_effects(
        self,
    ) -> tuple[FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Everyone a little different; the planted standouts and poor performers much more.

        They are named by place, not by name (names change with the seed): the person who
        serves the most customers of a pool at a branch is rank 0, and so on.
        """
        org = self.org
        rng = np.random.default_rng([self.options.seed, SURVEY_STREAM, 0])
        n = len(org.employee_pk)
        effect = rng.normal(0.0, EMPLOYEE_SPREAD, n)
        standout = np.zeros(n, dtype=np.bool_)
        poor = np.zeros(n, dtype=np.bool_)
        for planted, value, mark in ((STANDOUTS, STANDOUT_EFFECT, standout),
                                     (POOR_PERFORMERS, POOR_EFFECT, poor)):  # fmt: skip
            for code, pool, rank in planted:
                employee = self.ranked(code, pool, rank)
                if employee is not None:
                    effect[employee] = value
                    mark[employee] = True
        return effect, standout, poor

    def ranked(self, branch_code: str, pool: int, rank: int) -> int | None:
        """The employee (index) of a pool at a branch by rank: most customers served first."""
        org = self.org
        b = next(i for i, spec in enumerate(BRANCHES) if spec[0] == branch_code)
        slots = org.pools[pool, b, : org.pool_size[pool, b]]
        if not len(slots):
            return None
        people, served = np.unique(slots, return_counts=True)
        order = np.lexsort((people, -served))
        return int(people[order[rank]]) if rank < len(order) else None

    def _write_responses(
        self,
        sends: Sends,
        rows: IntArray,
        invitation_ids: IntArray,
        funnel: Funnel,
        answers: Answers,
        response_number: IntArray,
        language: npt.NDArray[Any],
        survey_pk: IntArray,
        ref: dict[str, IntArray],
        references: dict[str, IntArray],
    ) -> int:
        people = self.people
        assert people is not None
        writer = self.writer
        customer_pk = people.pk[sends.customer[rows]]
        detractor = answers.category[rows] == DETRACTOR
        asks_call_back = detractor & answers.contact_answered[rows]
        phones: dict[int, str] = {}
        if asks_call_back.any():
            wanted = customer_pk[asks_call_back & answers.contact_yes[rows]].tolist()
            phones = dict(Customer.objects.filter(pk__in=wanted).values_list("pk", "phone"))
        comments: list[str] = []
        answer_json: list[str] = []
        may_contact: list[bool | None] = []
        contact_phone: list[str] = []
        sources: list[str] = []
        for j, i in enumerate(rows.tolist()):
            s = int(sends.slot[i])
            lang = str(language[i])
            category = int(answers.category[i])
            sentiment = SENTIMENTS[category]
            context = str(answers.context[i])
            k = int(answers.n_reasons[i])
            chosen = [int(answers.first[i]), int(answers.second[i])][:k]
            payload: dict[str, Any] = {}
            if chosen:
                payload["reasons"] = [REASONS[s][r] for r in chosen]
            if s == RELATIONSHIP:
                uses = [name for name, u in zip(COMPETITORS, answers.uses[i], strict=True) if u]
                if uses:
                    payload["competitors"] = {
                        "uses": uses,
                        "scores": {
                            name: int(answers.competitor_score[i, c])
                            for c, name in enumerate(COMPETITORS)
                            if answers.uses[i, c] and answers.rated[i, c]
                        },
                    }
            text = ""
            if answers.commented[i]:
                topics = [TOPICS[s][r] for r in chosen] or ["general"]
                minutes = int(answers.minutes[i])
                text = COMMENTS.sentence(topics[0], sentiment, context, lang,
                                         float(answers.u_first[i]), minutes)  # fmt: skip
                if len(topics) > 1 and answers.both[i]:
                    text += " " + COMMENTS.sentence(topics[1], sentiment, context, lang,
                                                    float(answers.u_second[i]), minutes)  # fmt: skip
                if answers.u_open[i] < 0.15:
                    text = OPENERS[lang][int(answers.u_open[i] * 100) % 2] + text
                closer = CLOSERS[sentiment][lang]
                # ...but no second "thank you" after a sentence that already says it.
                if answers.u_close[i] < 0.25 and closer.strip(" !.").lower() not in text.lower():
                    text += closer
            consent: bool | None = None
            phone = ""
            if asks_call_back[j]:
                consent = bool(answers.contact_yes[i])
                phone = phones.get(int(customer_pk[j]), "") if consent else ""
                payload["contact"] = {"may_contact": consent, "phone": phone}
            comments.append(text)
            answer_json.append(json.dumps(payload, ensure_ascii=False))
            may_contact.append(consent)
            contact_phone.append(phone)
            email = sends.delivery[i] == EMAIL
            sources.append("email" if email and answers.one_click[i] else "web")
        answered = funnel.answered[rows]
        values: dict[str, Any] = {
            "workspace_id": itertools.repeat(self.workspace.pk),
            "external_id": [f"R-{k:09d}" for k in response_number[rows].tolist()],
            "survey_id": survey_pk[sends.slot[rows]].tolist(),
            "invitation_id": invitation_ids.tolist(),
            "customer_id": customer_pk.tolist(),
            "interaction_id": _nullable(sends.interaction[rows]),
            "score": answers.score[rows].tolist(),
            "comment": comments,
            "answers": answer_json,
            "language": language[rows].tolist(),
            "answered_at": writer.timestamps(answered),
            "source": sources,
            "may_contact": may_contact,
            "contact_phone": contact_phone,
            "is_test": itertools.repeat(False),
            "created_at": writer.timestamps(answered),
            "updated_at": writer.timestamps(answered),
        }
        for column, index in references.items():
            values[column] = _nullable_ref(ref[column], index[rows])
        columns, table_rows = _table(Response, values, writer)
        writer.write(Response, columns, table_rows)
        return len(table_rows)

    def _flag_silent_accounts(self) -> None:
        """Open the "accounts at risk" the history calls for, if the funnel module is there."""
        try:
            from cxloop.surveys.funnel import flag_silent_accounts
        except ImportError:  # pragma: no cover - the module ships with the surveys
            return
        flag_silent_accounts(self.workspace)


@dataclass
class WaveDraw:
    at: int
    population: IntArray  # eligible customers per segment
    shares: IntArray  # invited per segment
    sends: Sends


@dataclass
class Funnel:
    sent: IntArray
    delivered: IntArray
    opened: IntArray
    clicked: IntArray
    answered: IntArray
    bounced: IntArray
    reminder_due: IntArray
    reminded: IntArray
    expires: IntArray


@dataclass
class Answers:
    category: IntArray
    score: IntArray
    first: IntArray
    second: IntArray
    n_reasons: IntArray
    commented: npt.NDArray[np.bool_]
    both: npt.NDArray[np.bool_]
    u_first: FloatArray
    u_second: FloatArray
    u_open: FloatArray
    u_close: FloatArray
    minutes: IntArray
    contact_answered: npt.NDArray[np.bool_]
    contact_yes: npt.NDArray[np.bool_]
    one_click: npt.NDArray[np.bool_]
    uses: npt.NDArray[np.bool_]
    rated: npt.NDArray[np.bool_]
    competitor_score: IntArray
    context: npt.NDArray[Any]


# --- helpers --------------------------------------------------------------------------------

# How a channel is (not) usable: 0 yes, 1 no address, 2 no consent.
_STATE_TEXT = ("", "no address", "no consent")


def _channel_states(reach: npt.NDArray[Any]) -> tuple[IntArray, IntArray]:
    def state(address: int, consent: int) -> IntArray:
        return np.where((reach & address) == 0, 1, np.where((reach & consent) == 0, 2, 0))

    return state(REACH_EMAIL, REACH_EMAIL_CONSENT), state(REACH_PHONE, REACH_SMS_CONSENT)


def _channel_choice(
    reach: npt.NDArray[Any],
) -> tuple[IntArray, npt.NDArray[Any], npt.NDArray[Any]]:
    """E-mail, else SMS (the demo surveys' preference), else none with the reason and detail
    ``rules.choose_channel`` would give (a refusal weighs more than a missing address)."""
    email, sms = _channel_states(reach)
    delivery = np.where(email == 0, EMAIL, np.where(sms == 0, SMS, -1))
    reason = np.where((email == 2) | (sms == 2), Reason.NO_CONSENT.value, Reason.NO_CONTACT.value)
    table = np.array([[f"email: {_STATE_TEXT[e]}; sms: {_STATE_TEXT[s]}" for s in range(3)]
                      for e in range(3)])  # fmt: skip
    return delivery, reason, table[email, sms]


def _sms_or_none(reach: npt.NDArray[Any]) -> IntArray:
    _, sms = _channel_states(reach)
    return np.where(sms == 0, SMS, -1)


def _allocate(population: IntArray, total: int) -> IntArray:
    """Proportional allocation by largest remainder, never more than a stratum holds."""
    if total <= 0 or population.sum() == 0:
        return np.zeros_like(population)
    exact = total * population / population.sum()
    shares = np.minimum(np.floor(exact).astype(np.int64), population)
    for s in np.argsort(-(exact - np.floor(exact)), kind="stable"):
        if shares.sum() >= total:
            break
        if shares[s] < population[s]:
            shares[s] += 1
    return shares


def _slices(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _concat(a: Sends, b: Sends) -> Sends:
    return Sends(**{
        f.name: np.concatenate([getattr(a, f.name), getattr(b, f.name)]) for f in fields(Sends)
    })  # fmt: skip


def _nullable(ids: IntArray) -> list[int | None]:
    return [i if i >= 0 else None for i in ids.tolist()]


def _nullable_ref(pks: IntArray, index: IntArray) -> list[int | None]:
    values = pks.tolist()
    return [values[i] if i >= 0 else None for i in index.tolist()]


def _stamps(writer: RowWriter, epoch: IntArray) -> list[str | None]:
    text = writer.timestamps(np.maximum(epoch, 0))
    return [t if e >= 0 else None for t, e in zip(text, epoch.tolist(), strict=True)]


def _table(
    model: type[Any], values: dict[str, Any], writer: RowWriter
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Columns and rows for every concrete column of ``model``: the given values, else the
    field's default. A column without either is an error here, not a failed COPY later."""
    columns: list[str] = []
    data: list[Iterable[Any]] = []
    n = next(len(v) for v in values.values() if isinstance(v, list))
    for f in model._meta.concrete_fields:
        if f.primary_key:
            continue
        if f.column in values:
            column: Iterable[Any] = values[f.column]
        elif f.has_default() and callable(f.default):
            column = [_db_value(f.get_default(), writer) for _ in range(n)]
        else:
            # The field's default, "" for a text field without one, None where null.
            default = f.get_default()
            if default is None and not f.null:
                raise RuntimeError(f"the demo gives no value for {model.__name__}.{f.name}")
            column = itertools.repeat(_db_value(default, writer))
        columns.append(f.column)
        data.append(column)
    return columns, list(zip(*data, strict=False))


def _db_value(value: Any, writer: RowWriter) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, dt.datetime):
        return writer.timestamp(value)
    return value
