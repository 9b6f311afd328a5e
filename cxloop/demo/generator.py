# ruff: noqa: RUF001, RUF003 - Russian names are written in Cyrillic on purpose
"""A realistic Moldovan telecom for demos and benchmarks, deterministic for a seed.

What it builds in one workspace: five regions, thirty branches (twenty-nine stores in real towns
and a contact centre), their teams and 200 employees with a full reporting line, products,
channels, four customer journeys with their stages and touchpoints, customers (Romanian,
Russian and English speakers, B2C and B2B with their companies) and a year of interactions with
the weekday, hour-of-day and seasonal patterns a CX manager expects to see; then surveys with
their history of invitations, answers and decisions (see :mod:`cxloop.demo.surveys`).

Determinism. Every random draw comes from a ``numpy`` generator seeded with the seed and a
stream number (organisation, customers, interactions, surveys), and the chunks draw
from one generator per chunk, so the same seed with the same sizes writes the same rows. Only
the time line is anchored to the calendar: the interactions cover the ``months`` that end at
the start of the current UTC day (or at the ``end`` given), so two runs on the same day are
identical, and a run on another day is the same data shifted to the new window. Pass ``end``
(``cxloop demo --end-date``) to reproduce a data set exactly on any day. Changing
``chunk_size`` changes the draws, hence the data: it is fixed by the command.

Scale. Customers and interactions are generated and written in chunks (50,000 rows by default)
with vectorised numpy draws; of the interactions only those a survey may still invite are kept
(a few per customer, some forty bytes each), and per customer a few small arrays (id, home
branch, main product, activity, language, reach, company, segment).
PostgreSQL receives the rows by ``COPY``, SQLite by ``executemany``, one transaction per chunk:
PostgreSQL's queue of deferred foreign-key checks stays small, and a crash leaves whole chunks
behind, never half of one (the workspace then refuses a second run: delete it and start again).
See :class:`RowWriter` for what makes PostgreSQL fast.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
import unicodedata
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from django.db import connection, transaction

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.customers.models import Account, Customer
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import (
    Branch,
    Channel,
    Employee,
    Journey,
    Product,
    Region,
    Stage,
    Team,
    Touchpoint,
)
from cxloop.surveys.models import Decision, Invitation, Response, Survey, Wave

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
SmallArray = npt.NDArray[np.int16]
TinyArray = npt.NDArray[np.int8]

TIME_ZONE = "Europe/Chisinau"
DEFAULT_CHUNK = 50_000
DEFAULT_EMPLOYEES = 200

# Independent streams of the seed, so that e.g. the organisation does not change with the
# number of customers asked for.
ORG_STREAM, CUSTOMER_STREAM, INTERACTION_STREAM, SURVEY_STREAM = 1, 2, 3, 4

# --- organisation ---------------------------------------------------------------------------

# code, name, share of (Romanian, Russian, English) speakers among the region's customers.
# Bălți and the north, and above all Găgăuzia, speak mostly Russian; the centre mostly
# Romanian; English speakers are expatriates, mostly in the capital. Weighted by the branch
# sizes below this gives about ro 55 % / ru 40 % / en 5 %.
REGIONS: tuple[tuple[str, str, tuple[float, float, float]], ...] = (
    ("R-CHI", "Chișinău", (0.57, 0.35, 0.08)),
    ("R-NORD", "Nord (Bălți)", (0.47, 0.51, 0.02)),
    ("R-CENTRU", "Centru", (0.80, 0.18, 0.02)),
    ("R-SUD", "Sud (Cahul)", (0.64, 0.34, 0.02)),
    ("R-UTA", "Găgăuzia (UTA)", (0.09, 0.89, 0.02)),
)

LARGE, SMALL, CONTACT_CENTRE = "large", "small", "contact_centre"
# code, name, region, city, weight (customers served, roughly the town's size), layout.
BRANCHES: tuple[tuple[str, str, str, str, float, str], ...] = (
    ("B01", "Chișinău Centru", "R-CHI", "Chișinău", 10.0, LARGE),
    ("B02", "Chișinău Botanica", "R-CHI", "Chișinău", 8.0, LARGE),
    ("B03", "Chișinău Ciocana", "R-CHI", "Chișinău", 6.0, LARGE),
    ("B04", "Chișinău Râșcani", "R-CHI", "Chișinău", 7.0, LARGE),
    ("B05", "Chișinău Buiucani", "R-CHI", "Chișinău", 6.0, LARGE),
    ("B06", "Contact Centre Chișinău", "R-CHI", "Chișinău", 0.0, CONTACT_CENTRE),
    ("B07", "Bălți Centru", "R-NORD", "Bălți", 6.0, LARGE),
    ("B08", "Bălți Dacia", "R-NORD", "Bălți", 4.0, LARGE),
    ("B09", "Soroca", "R-NORD", "Soroca", 2.5, SMALL),
    ("B10", "Edineț", "R-NORD", "Edineț", 1.8, SMALL),
    ("B11", "Drochia", "R-NORD", "Drochia", 1.6, SMALL),
    ("B12", "Fălești", "R-NORD", "Fălești", 1.3, SMALL),
    ("B13", "Florești", "R-NORD", "Florești", 1.3, SMALL),
    ("B14", "Briceni", "R-NORD", "Briceni", 1.0, SMALL),
    ("B15", "Orhei", "R-CENTRU", "Orhei", 3.0, SMALL),
    ("B16", "Ungheni", "R-CENTRU", "Ungheni", 3.0, SMALL),
    ("B17", "Strășeni", "R-CENTRU", "Strășeni", 1.8, SMALL),
    ("B18", "Hîncești", "R-CENTRU", "Hîncești", 1.6, SMALL),
    ("B19", "Ialoveni", "R-CENTRU", "Ialoveni", 1.6, SMALL),
    ("B20", "Călărași", "R-CENTRU", "Călărași", 1.2, SMALL),
    ("B21", "Criuleni", "R-CENTRU", "Criuleni", 1.1, SMALL),
    ("B22", "Anenii Noi", "R-CENTRU", "Anenii Noi", 1.2, SMALL),
    ("B23", "Cahul", "R-SUD", "Cahul", 3.0, SMALL),
    ("B24", "Căușeni", "R-SUD", "Căușeni", 1.6, SMALL),
    ("B25", "Cimișlia", "R-SUD", "Cimișlia", 1.1, SMALL),
    ("B26", "Leova", "R-SUD", "Leova", 0.9, SMALL),
    ("B27", "Ștefan Vodă", "R-SUD", "Ștefan Vodă", 1.0, SMALL),
    ("B28", "Comrat", "R-UTA", "Comrat", 2.2, SMALL),
    ("B29", "Ceadîr-Lunga", "R-UTA", "Ceadîr-Lunga", 1.5, SMALL),
    ("B30", "Vulcănești", "R-UTA", "Vulcănești", 0.8, SMALL),
)

# Team kind → the pool of employees who serve customers at a touchpoint (see JOURNEYS).
STORE_POOL, FIELD_POOL, VOICE_POOL, CHAT_POOL = 0, 1, 2, 3
# layout → (team kind, name, pool, weight of a team for the front-line head count).
TEAM_LAYOUTS: dict[str, tuple[tuple[str, str, int, float], ...]] = {
    LARGE: (
        ("sales", "Sales", STORE_POOL, 1.0),
        ("service", "Service desk", STORE_POOL, 0.8),
        ("field", "Field service", FIELD_POOL, 0.6),
    ),
    SMALL: (
        ("sales_service", "Sales & service", STORE_POOL, 1.0),
        ("field", "Field service", FIELD_POOL, 0.6),
    ),
    CONTACT_CENTRE: (
        # Four in ten interactions go through the contact centre: most of the front line
        # beyond one person per store team works there.
        ("voice_sales", "Voice sales", VOICE_POOL, 120.0),
        ("voice_support", "Voice support", VOICE_POOL, 180.0),
        ("chat", "Chat & social media", CHAT_POOL, 120.0),
    ),
}
STAFF_TITLE = {
    "sales": "consultant",
    "service": "consultant",
    "sales_service": "consultant",
    "field": "technician",
    "voice_sales": "call-centre agent",
    "voice_support": "call-centre agent",
    "chat": "call-centre agent",
}
# Teams that take payments have one cashier.
CASHIER_TEAMS = frozenset({"sales", "sales_service"})

# --- products, channels, journeys -----------------------------------------------------------

FAMILIES = ("mobile", "internet", "tv", "device")
# code, name, category, family (what it is used for), popularity within its family.
PRODUCTS: tuple[tuple[str, str, str, str, float], ...] = (
    ("MOB-START", "Mobil Start 10 GB", "mobile", "mobile", 3.0),
    ("MOB-PLUS", "Mobil Plus 40 GB", "mobile", "mobile", 3.0),
    ("MOB-UNLIM", "Mobil Nelimitat", "mobile", "mobile", 1.5),
    ("MOB-YOUTH", "Mobil Youth", "mobile", "mobile", 1.0),
    ("MOB-PREPAID", "Cartelă Prepay", "mobile", "mobile", 2.0),
    ("NET-FIBER-300", "Fibra 300 Mbps", "home_internet", "internet", 3.0),
    ("NET-FIBER-1000", "Fibra 1 Gbps", "home_internet", "internet", 1.0),
    ("NET-HOME-4G", "Internet Acasă 4G", "home_internet", "internet", 1.0),
    ("TV-BASIC", "TV Digital Start", "tv", "tv", 2.0),
    ("TV-PLUS", "TV Digital Plus", "tv", "tv", 1.0),
    ("DEV-PHONE", "Smartphone", "devices", "device", 4.0),
    ("DEV-ROUTER", "Router Wi-Fi 6", "devices", "device", 1.5),
    ("DEV-TVBOX", "TV Box 4K", "devices", "device", 1.0),
    ("B2B-MOBILE", "Business Mobile", "b2b", "mobile", 3.0),
    ("B2B-FIBER", "Business Fibre", "b2b", "internet", 2.0),
    ("B2B-VPN", "Corporate VPN", "b2b", "internet", 1.0),
    ("B2B-PBX", "Cloud PBX", "b2b", "mobile", 0.5),
)

CHANNELS: tuple[tuple[str, str], ...] = (
    ("store", "Store"),
    ("call_centre", "Call centre"),
    ("web", "Website"),
    ("app", "Mobile app"),
    ("courier", "Courier"),
    ("field_service", "Field service"),
)

# Who serves the customer at a touchpoint: an employee of a pool, or nobody (self-service,
# a third-party courier, the network itself).
NOBODY, COURIER = -1, -2
# journey code, name, [(stage code, name, [(touchpoint code, name, channel, staffing)])].
JOURNEYS: tuple[tuple[str, str, tuple[tuple[str, str, tuple[Any, ...]], ...]], ...] = (
    ("J-CONNECT", "Connection", (
        ("S-CONNECT-CHOOSE", "Choose", (
            ("TP-STORE-ADVICE", "Advice in store", "store", STORE_POOL),
            ("TP-SALES-CALL", "Sales call", "call_centre", VOICE_POOL),
        )),
        ("S-CONNECT-ORDER", "Order", (
            ("TP-STORE-ORDER", "Contract signed in store", "store", STORE_POOL),
            ("TP-WEB-ORDER", "Online order", "web", NOBODY),
            ("TP-APP-ORDER", "Order in the app", "app", NOBODY),
        )),
        ("S-CONNECT-DELIVERY", "Delivery & installation", (
            ("TP-COURIER", "Courier delivery", "courier", COURIER),
            ("TP-INSTALLATION", "Home installation", "field_service", FIELD_POOL),
        )),
        ("S-CONNECT-FIRST-BILL", "First bill", (
            ("TP-FIRST-BILL-CALL", "Questions about the first bill", "call_centre", VOICE_POOL),
            ("TP-FIRST-BILL-APP", "First bill in the app", "app", NOBODY),
        )),
    )),
    ("J-SUPPORT", "Support", (
        ("S-SUPPORT-CONTACT", "Contact", (
            ("TP-SUPPORT-CALL", "Support hotline", "call_centre", VOICE_POOL),
            ("TP-WEB-CHAT", "Chat on the website", "web", CHAT_POOL),
            ("TP-APP-CHAT", "Chat in the app", "app", CHAT_POOL),
            ("TP-STORE-SERVICE", "Service desk in store", "store", STORE_POOL),
        )),
        ("S-SUPPORT-RESOLUTION", "Resolution", (
            ("TP-TECH-VISIT", "Technician visit", "field_service", FIELD_POOL),
            ("TP-REMOTE-FIX", "Remote fix by phone", "call_centre", VOICE_POOL),
        )),
        ("S-SUPPORT-FOLLOWUP", "Follow-up", (
            ("TP-FOLLOWUP-CALL", "Follow-up call", "call_centre", VOICE_POOL),
        )),
    )),
    ("J-BILLING", "Billing & payment", (
        ("S-BILLING-BILL", "Bill", (
            ("TP-BILL-CALL", "Questions about a bill", "call_centre", VOICE_POOL),
        )),
        ("S-BILLING-PAY", "Payment", (
            ("TP-PAY-STORE", "Payment at the till", "store", STORE_POOL),
            ("TP-PAY-APP", "Payment in the app", "app", NOBODY),
            ("TP-PAY-WEB", "Online payment", "web", NOBODY),
        )),
    )),
    ("J-USAGE", "Everyday use", (
        ("S-USAGE-NETWORK", "Network", (
            ("TP-MOBILE-NETWORK", "Mobile network", None, NOBODY),
        )),
        # Everyday errands in a store (top-up, SIM swap, a question): the touchpoint the demo's
        # "after-visit" survey listens to. Its code is the one docs and tutorials post to.
        # Last in the table, so the other touchpoints keep their places.
        ("S-USAGE-STORE", "Store visit", (
            ("store-visit", "Store visit", "store", STORE_POOL),
        )),
    )),
)  # fmt: skip


@dataclass(frozen=True)
class TypeSpec:
    """An interaction type: how common, which system sends it, where and about what."""

    name: str
    share: float
    source: str
    touchpoints: tuple[tuple[str, float], ...]
    # Product families asked about when it is not the customer's main product.
    families: tuple[tuple[str, float], ...]
    # Payments crowd before the bill's due date (the 20th).
    payment: bool = False


_SERVICE = (("mobile", 0.4), ("internet", 0.35), ("tv", 0.15), ("device", 0.1))
_BILLED = (("mobile", 0.5), ("internet", 0.35), ("tv", 0.15))
_SHIPPED = (("device", 0.8), ("mobile", 0.2))
_FIXED = (("internet", 0.7), ("tv", 0.3))
TYPES: tuple[TypeSpec, ...] = (
    TypeSpec("store_visit", 0.20, "crm",
             (("store-visit", 0.55), ("TP-STORE-ADVICE", 0.12), ("TP-STORE-ORDER", 0.13),
              ("TP-STORE-SERVICE", 0.2)),
             (("mobile", 0.35), ("device", 0.35), ("internet", 0.2), ("tv", 0.1))),
    TypeSpec("call", 0.22, "crm",
             (("TP-SALES-CALL", 0.14), ("TP-FIRST-BILL-CALL", 0.07), ("TP-SUPPORT-CALL", 0.43),
              ("TP-REMOTE-FIX", 0.12), ("TP-FOLLOWUP-CALL", 0.08), ("TP-BILL-CALL", 0.16)),
             _SERVICE),
    TypeSpec("chat", 0.09, "crm", (("TP-WEB-CHAT", 0.45), ("TP-APP-CHAT", 0.55)), _SERVICE),
    TypeSpec("online_order", 0.04, "crm", (("TP-WEB-ORDER", 0.55), ("TP-APP-ORDER", 0.45)),
             (("device", 0.6), ("mobile", 0.3), ("internet", 0.1))),
    TypeSpec("delivery", 0.06, "crm", (("TP-COURIER", 1.0),), _SHIPPED),
    TypeSpec("installation", 0.035, "crm", (("TP-INSTALLATION", 1.0),), _FIXED),
    TypeSpec("service_job", 0.05, "crm", (("TP-TECH-VISIT", 1.0),), _FIXED),
    TypeSpec("bill_payment", 0.26, "billing",
             (("TP-PAY-STORE", 0.3), ("TP-PAY-APP", 0.45), ("TP-PAY-WEB", 0.2),
              ("TP-FIRST-BILL-APP", 0.05)),
             _BILLED, payment=True),
    # Operational events, a few per cent: what proactive service recovery reacts to.
    TypeSpec("dropped_call", 0.025, "network", (("TP-MOBILE-NETWORK", 1.0),), (("mobile", 1.0),)),
    TypeSpec("late_delivery", 0.01, "crm", (("TP-COURIER", 1.0),), _SHIPPED),
    TypeSpec("failed_payment", 0.01, "billing", (("TP-PAY-APP", 0.6), ("TP-PAY-WEB", 0.4)),
             _BILLED, payment=True),
)  # fmt: skip
SOURCE_PREFIX = {"crm": "CRM-", "billing": "BIL-", "network": "NET-"}
# How often an interaction is about the customer's main product, when the type allows it.
MAIN_PRODUCT_SHARE = 0.7
# How often a customer visits a store other than their home branch.
WANDER_SHARE = 0.12

# --- time patterns (local time) -------------------------------------------------------------

STORE_KIND, PHONE_KIND, DIGITAL_KIND, FIELD_KIND, NETWORK_KIND = range(5)
CHANNEL_KIND = {
    "store": STORE_KIND,
    "call_centre": PHONE_KIND,
    "web": DIGITAL_KIND,
    "app": DIGITAL_KIND,
    "courier": FIELD_KIND,
    "field_service": FIELD_KIND,
    None: NETWORK_KIND,
}
# Monday … Sunday. Stores and technicians hardly work on Sunday; the app never closes.
WEEKDAY_WEIGHTS = np.array([
    [1.30, 1.05, 1.00, 1.00, 1.25, 0.75, 0.15],
    [1.30, 1.10, 1.00, 1.00, 1.20, 0.60, 0.30],
    [1.15, 1.05, 1.00, 1.00, 1.05, 0.80, 0.55],
    [1.20, 1.10, 1.05, 1.05, 1.15, 0.45, 0.05],
    [1.05, 1.00, 1.00, 1.00, 1.05, 0.90, 0.85],
])  # fmt: skip
# Hours 0 … 23. Stores open 09-20 with a late-morning and an after-work peak; the call centre
# answers 08-22; self-service peaks in the evening; technicians work 09-19.
HOUR_WEIGHTS = np.array([
    [0] * 9 + [0.45, 1.0, 1.15, 1.15, 0.95, 0.7, 0.75, 1.0, 1.1, 1.05, 0.35] + [0] * 4,
    [0] * 8 + [0.45, 0.85, 1.0, 1.0, 0.95, 0.85, 0.8, 0.8, 0.9, 0.95, 0.85, 0.7, 0.5, 0.35]
    + [0] * 2,
    [0.12, 0.05, 0.02, 0.01, 0.01, 0.02, 0.08, 0.25, 0.5, 0.7, 0.85, 0.9, 0.9, 0.85, 0.8, 0.8,
     0.85, 0.95, 1.05, 1.15, 1.15, 1.0, 0.7, 0.35],
    [0] * 9 + [0.8, 1.0, 1.0, 0.9, 0.7, 0.85, 0.95, 0.9, 0.7, 0.35] + [0] * 5,
    [0.1, 0.05, 0.03, 0.02, 0.02, 0.04, 0.15, 0.45, 0.8, 0.9, 0.95, 1.0, 1.0, 0.95, 0.95, 1.0,
     1.05, 1.15, 1.2, 1.2, 1.1, 0.9, 0.6, 0.25],
], dtype=np.float64)  # fmt: skip
# Public holidays of Moldova with a fixed date (month, day): stores nearly empty.
HOLIDAYS = frozenset({(1, 1), (1, 2), (1, 7), (1, 8), (3, 8), (5, 1), (5, 9), (6, 1), (8, 27),
                      (8, 31), (12, 25)})  # fmt: skip
HOLIDAY_FACTOR = (0.2, 0.5, 0.8, 0.2, 1.0)
# A store visitor's wait (the visit's ``wait_min``) grows with the crowd at the counter:
# Saturdays run on a thin rota, Mondays carry the weekend's backlog, after work (18:00-20:00)
# the queue is longest, and one flagship store had a queue problem until more staff were put
# on the peak hours two thirds into the history, after which its waits shrink slowly back to
# normal. The demo's survey scores follow the waits (see cxloop/demo/surveys.py).
STORE_WAIT_WEEKDAY = np.array([1.3, 1.0, 0.95, 0.95, 1.1, 1.5, 0.9])
EVENING_HOUR = 18
STORE_WAIT_EVENING = 1.45
WAITING_BRANCH = "B01"
WAITING_FIX_AT = 2 / 3  # of the history
STORE_WAIT_BEFORE_FIX = 1.8

# --- people ---------------------------------------------------------------------------------

RO, RU, EN = 0, 1, 2
LANGUAGES = ("ro", "ru", "en")
# Lists start with the most common names; draws favour the start.
RO_MALE = ("Ion", "Vasile", "Gheorghe", "Mihai", "Andrei", "Alexandru", "Nicolae", "Sergiu",
           "Victor", "Dumitru", "Constantin", "Petru", "Adrian", "Cristian", "Vitalie", "Radu",
           "Valeriu", "Eugen", "Dorin", "Iurie", "Veaceslav", "Marin", "Tudor", "Ștefan",
           "Florin", "Vlad", "Octavian", "Dan")  # fmt: skip
RO_FEMALE = ("Maria", "Ana", "Elena", "Natalia", "Tatiana", "Cristina", "Mariana", "Ecaterina",
             "Irina", "Angela", "Valentina", "Diana", "Daniela", "Doina", "Aurelia", "Alina",
             "Corina", "Lilia", "Victoria", "Ioana", "Andreea", "Gabriela", "Rodica", "Silvia",
             "Violeta", "Ludmila", "Nadejda", "Ina")  # fmt: skip
RO_LAST = ("Rusu", "Ceban", "Ciobanu", "Popa", "Cojocaru", "Munteanu", "Lungu", "Rotaru",
           "Moraru", "Bivol", "Țurcanu", "Bălan", "Sârbu", "Cebotari", "Popescu", "Guțu",
           "Melnic", "Bejenaru", "Ursu", "Croitoru", "Cazac", "Botnari", "Grosu", "Lupu",
           "Plămădeală", "Roșca", "Cușnir", "Căpățînă", "Vrabie", "Negru", "Golban",
           "Ungureanu", "Prodan", "Morari", "Guzun", "Stratan", "Chiriac", "Paladi", "Istrati",
           "Tănase")  # fmt: skip
RU_MALE = ("Сергей", "Александр", "Дмитрий", "Андрей", "Алексей", "Игорь", "Владимир",
           "Николай", "Юрий", "Виктор", "Олег", "Максим", "Евгений", "Павел", "Артём", "Денис",
           "Роман", "Вадим", "Константин", "Михаил", "Иван", "Геннадий")  # fmt: skip
RU_FEMALE = ("Елена", "Наталья", "Татьяна", "Ольга", "Ирина", "Светлана", "Анна", "Мария",
             "Екатерина", "Людмила", "Юлия", "Галина", "Марина", "Оксана", "Виктория", "Алина",
             "Анастасия", "Дарья", "Валентина", "Лариса", "Вера", "Надежда")  # fmt: skip
# Male forms; Russian -ов/-ев/-ин take -а for women, Ukrainian, Gagauz and Moldovan ones do not.
RU_LAST = ("Иванов", "Петров", "Смирнов", "Попов", "Кузнецов", "Морозов", "Волков",
           "Соколов", "Лебедев", "Козлов", "Новиков", "Павлов", "Семенов", "Голубев", "Романов",
           "Жуков", "Ковальчук", "Бондаренко", "Шевченко", "Ткаченко", "Мельник", "Руденко",
           "Стоянов", "Топал", "Кара", "Гайдаржи", "Дерменжи", "Чебан", "Русу", "Гуцу",
           "Никитин", "Сорокин")  # fmt: skip
EN_MALE = ("John", "David", "Michael", "James", "Thomas", "Daniel", "Mark", "Paul", "Peter",
           "Andrew", "Robert", "Richard")  # fmt: skip
EN_FEMALE = ("Sarah", "Emma", "Laura", "Anna", "Kate", "Emily", "Julia", "Helen", "Lucy",
             "Rachel", "Claire", "Sophie")  # fmt: skip
EN_LAST = ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Miller", "Davis", "Clark",
           "Walker", "Wright", "Harris", "Evans", "Turner", "Hughes")  # fmt: skip
# Staff records are kept in the Latin script of Moldovan identity papers.
RU_MALE_LATIN = ("Serghei", "Alexandr", "Dmitrii", "Andrei", "Igor", "Vladimir", "Nicolai",
                 "Iurii", "Oleg", "Maxim", "Evghenii", "Pavel", "Denis", "Roman",
                 "Vadim")  # fmt: skip
RU_FEMALE_LATIN = ("Elena", "Natalia", "Tatiana", "Olga", "Irina", "Svetlana", "Ana",
                   "Ecaterina", "Ludmila", "Iulia", "Galina", "Marina", "Oxana",
                   "Victoria")  # fmt: skip
RU_LAST_LATIN = ("Ivanov", "Petrov", "Smirnov", "Popov", "Cuznețov", "Morozov", "Volcov",
                 "Lebedev", "Covalciuc", "Bondarenco", "Șevcenco", "Tcacenco", "Stoianov",
                 "Topal", "Cara", "Gaidarji", "Dermenji", "Nichitin")  # fmt: skip

CYRILLIC_TO_LATIN = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "sch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "iu", "я": "ia",
})  # fmt: skip

# Segments of private customers (92 %); companies are small_business or corporate.
B2B_SHARE = 0.08
CORPORATE_SHARE = 0.25
B2C_SEGMENTS = (("mass", 0.62), ("premium", 0.12), ("youth", 0.13), ("senior", 0.13))
SEGMENTS = ("mass", "premium", "youth", "senior", "small_business", "corporate")
YOUTH, SENIOR, SMALL_BUSINESS, CORPORATE = 2, 3, 4, 5
# How much more often a customer of the segment deals with the company.
SEGMENT_ACTIVITY = (1.0, 1.4, 1.1, 0.7, 1.6, 2.5)
SEGMENT_MAIN_PRODUCT: dict[str, tuple[tuple[str, float], ...]] = {
    "mass": (("MOB-START", 0.25), ("MOB-PLUS", 0.25), ("MOB-PREPAID", 0.15),
             ("NET-FIBER-300", 0.15), ("NET-HOME-4G", 0.08), ("TV-BASIC", 0.07),
             ("MOB-UNLIM", 0.05)),
    "premium": (("MOB-UNLIM", 0.35), ("NET-FIBER-1000", 0.3), ("TV-PLUS", 0.15),
                ("MOB-PLUS", 0.2)),
    "youth": (("MOB-YOUTH", 0.6), ("MOB-PREPAID", 0.25), ("MOB-PLUS", 0.15)),
    "senior": (("MOB-START", 0.35), ("TV-BASIC", 0.3), ("MOB-PREPAID", 0.2),
               ("NET-HOME-4G", 0.15)),
    "small_business": (("B2B-MOBILE", 0.5), ("B2B-FIBER", 0.4), ("B2B-PBX", 0.1)),
    "corporate": (("B2B-FIBER", 0.3), ("B2B-VPN", 0.3), ("B2B-MOBILE", 0.3), ("B2B-PBX", 0.1)),
}  # fmt: skip
# Domains reserved for examples (RFC 2606), so no demo address reaches a real mailbox.
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example", "post.example")
# first.last, firstlast + year of birth, f.last + number, last.first + number.
EMAIL_STYLES = (0.03, 0.31, 0.33, 0.33)
STAFF_DOMAIN = "demo-telecom.example"
# Diaspora customers keep their Moldovan number but live elsewhere.
ABROAD_SHARE = 0.025
ABROAD_TIME_ZONES = ("Europe/Rome", "Europe/London", "Europe/Berlin", "Europe/Paris",
                     "Europe/Moscow", "Europe/Bucharest", "America/New_York")  # fmt: skip
# Mobile prefixes of Moldovan operators (+373 6x / 7x, eight national digits).
PHONE_PREFIXES = ("60", "62", "67", "68", "69", "76", "78", "79")
PHONE_SPACE = len(PHONE_PREFIXES) * 1_000_000
# Odd and not a multiple of 5, hence coprime with PHONE_SPACE: i → (a·i + b) mod space is a
# permutation, so the first eight million customers all get different numbers.
PHONE_MULTIPLIER = 3_141_593
COMPANY_FORMS_SMALL = ("SRL", "SRL", "SRL", "Î.I.")
COMPANY_FORMS_CORPORATE = ("SA", "Î.C.S.", "SRL")
COMPANY_WORDS = ("Agro", "Vin", "Construct", "Trans", "Med", "Tehno", "Eco", "Nord", "Sud",
                 "Prut", "Nistru", "Codru", "Moldo", "Bio", "Lact", "Pan", "Auto", "Logistic",
                 "Mobila", "Textil", "Farm", "Dental", "Green", "Star", "Alfa", "Delta",
                 "Orizont", "Izvor", "Dor", "Basarab")  # fmt: skip
COMPANY_SUFFIXES = ("Grup", "Plus", "Service", "Com", "Lux", "Prim", "Invest", "Impex", "Trade",
                    "Market", "Design", "Consult", "Nova", "Tur")  # fmt: skip


def ascii_name(text: str) -> str:
    """Lower-case ASCII for an e-mail address: drop diacritics, transliterate Cyrillic."""
    text = text.lower().translate(CYRILLIC_TO_LATIN)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum())


def russian_female(surname: str) -> str:
    if surname.endswith(("ов", "ев", "ин")):
        return surname + "а"
    if surname.endswith(("ov", "ev", "in")):
        return surname + "a"
    return surname


@dataclass(frozen=True)
class NameBook:
    """Customer names by language and sex, each with its ASCII form for e-mail addresses."""

    first: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # [language][female]
    last: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    first_ascii: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    last_ascii: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]

    @classmethod
    def build(cls) -> NameBook:
        first = ((RO_MALE, RO_FEMALE), (RU_MALE, RU_FEMALE), (EN_MALE, EN_FEMALE))
        ru_female_last = tuple(russian_female(s) for s in RU_LAST)
        last = ((RO_LAST, RO_LAST), (RU_LAST, ru_female_last), (EN_LAST, EN_LAST))

        def asc(
            table: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...],
        ) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
            return tuple(
                (tuple(ascii_name(n) for n in m), tuple(ascii_name(n) for n in f)) for m, f in table
            )

        return cls(first, last, asc(first), asc(last))


NAMES = NameBook.build()


def _skewed_index(rng: np.random.Generator, sizes: IntArray) -> IntArray:
    """Indices into lists of the given sizes that favour the first (most common) names."""
    return np.minimum((rng.random(len(sizes)) ** 1.6 * sizes).astype(np.int64), sizes - 1)


def _cdf(weights: Sequence[float] | FloatArray) -> FloatArray:
    """Cumulative weights ending in exactly 1.0, for ``searchsorted(cdf, u, side="right")``."""
    w = np.asarray(weights, dtype=np.float64)
    cdf = np.cumsum(w / w.sum())
    cdf[-1] = 1.0
    return cdf


def _pick(rng: np.random.Generator, cdf: FloatArray, n: int) -> IntArray:
    return np.searchsorted(cdf, rng.random(n), side="right").astype(np.int64)


def _pick_rows(rng: np.random.Generator, cdfs: FloatArray) -> IntArray:
    """One draw per row of a matrix of cumulative weights (one distribution per row)."""
    u = rng.random(len(cdfs))
    return (u[:, None] >= cdfs).sum(axis=1).astype(np.int64)


# --- options, progress, summary -------------------------------------------------------------


@dataclass(frozen=True)
class DemoOptions:
    customers: int
    interactions: int
    seed: int
    months: int = 12
    # The interactions end before this instant; default: the start of the current UTC day.
    end: dt.datetime | None = None
    employees: int = DEFAULT_EMPLOYEES
    chunk_size: int = DEFAULT_CHUNK


class Progress(Protocol):
    def start(self, stage: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


class NoProgress:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


@dataclass
class DemoSummary:
    counts: dict[str, int] = field(default_factory=dict)
    # Where the demo's survey answers hide their patterns (see cxloop/demo/surveys.py).
    planted: dict[str, list[str]] = field(default_factory=dict)
    # The local days the interactions cover, and the instant they all precede.
    first_day: dt.date | None = None
    last_day: dt.date | None = None
    end: dt.datetime | None = None
    seconds: float = 0.0

    def lines(self) -> list[str]:
        lines = [f"{name}: {count:,}" for name, count in self.counts.items()]
        if self.first_day and self.last_day and self.end:
            lines.append(
                f"interactions on {self.first_day} … {self.last_day} ({TIME_ZONE}), "
                f"before {self.end:%Y-%m-%d %H:%M} UTC"
            )
        if self.planted:
            lines.append(
                "planted in the answers: "
                + "; ".join(f"{what} {', '.join(where)}" for what, where in self.planted.items())
            )
        lines.append(f"took {self.seconds:.1f} s")
        return lines


def default_end(now: dt.datetime | None = None) -> dt.datetime:
    """The start of the current UTC day: the same for every run on one day."""
    now = (now or clock.now()).astimezone(dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


DEMO_MODELS: tuple[type[Any], ...] = (
    Region, Branch, Team, Employee, Product, Channel, Journey, Customer, Account, Interaction,
    Survey,
)  # fmt: skip


def existing_data(workspace: Workspace) -> dict[str, int]:
    """What the workspace already holds that demo data would collide with or be mixed into."""
    found = {}
    for model in DEMO_MODELS:
        count = model._default_manager.filter(workspace=workspace).count()
        if count:
            found[str(model._meta.verbose_name_plural)] = count
    return found


# --- writing rows ---------------------------------------------------------------------------


class RowWriter:
    """Appends rows to a table as fast as the database allows: COPY or executemany.

    Use it as a context manager: on SQLite it enlarges the page cache for the run (random
    inserts into the interaction table's eight indexes thrash the default 2 MB cache and run
    twice as slowly), and puts the setting back afterwards.

    On PostgreSQL, checking the foreign keys costs more than inserting the rows: one query per
    reference per row, run by triggers at commit. When the role may skip triggers (a
    superuser: a development or benchmark database), each chunk's transaction does so with
    ``SET LOCAL session_replication_role = replica``, and :meth:`verify` checks every reference
    once afterwards with a single join, which is what the per-row checks would have proved.
    The rows' references are built from ids just read from the same workspace, so the check
    is a guard against concurrent deletes, not against the generator. The schema has no
    triggers of its own; one added later would be skipped here too.
    """

    SQLITE_CACHE_KIB = 128 * 1024

    def __init__(self) -> None:
        self.postgres = connection.vendor == "postgresql"
        self.unchecked = False
        self._cache_size: int | None = None

    def __enter__(self) -> RowWriter:
        with connection.cursor() as cursor:
            if self.postgres:
                cursor.execute("SHOW is_superuser")
                self.unchecked = cursor.fetchone()[0] == "on"
            else:
                cursor.execute("PRAGMA cache_size")
                self._cache_size = int(cursor.fetchone()[0])
                cursor.execute(f"PRAGMA cache_size = -{self.SQLITE_CACHE_KIB}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cache_size is not None:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA cache_size = {self._cache_size}")

    def timestamp(self, value: dt.datetime) -> str:
        """A UTC instant as the column expects it (SQLite: Django's naive UTC text)."""
        if self.postgres:
            return value.isoformat()
        return str(connection.ops.adapt_datetimefield_value(value))

    def timestamps(self, epoch_seconds: IntArray) -> list[str]:
        """Whole-second UTC instants, written as Django writes them (no fraction when 0)."""
        text = np.datetime_as_string(epoch_seconds.astype("datetime64[s]"))
        if self.postgres:
            return [t + "+00" for t in text.tolist()]
        return [t.replace("T", " ") for t in text.tolist()]

    def write(self, model: type[Any], columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        names = ", ".join(quote(c) for c in columns)
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor
            if self.postgres:
                if self.unchecked:
                    raw.execute("SET LOCAL session_replication_role = replica")
                with raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                if self.unchecked:
                    # Called inside a caller's transaction, SET LOCAL would outlive this chunk.
                    raw.execute("SET LOCAL session_replication_role = DEFAULT")
            else:
                marks = ", ".join("?" * len(columns))
                raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)

    def analyze(self) -> None:
        """Fresh planner statistics: after a bulk load the old ones describe empty tables,
        and the next queries (the check below, the first dashboards) pick nested loops over
        millions of rows."""
        if not self.postgres:
            return
        with connection.cursor() as cursor:
            for model in (Account, Customer, Interaction, Invitation, Response, Decision):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")

    def verify(self, workspace: Workspace) -> None:
        """After an unchecked load: every reference of the workspace's new rows resolves."""
        if not self.unchecked:
            return
        where = (
            ("touchpoint", Touchpoint), ("branch", Branch), ("employee", Employee),
            ("product", Product), ("channel", Channel),
        )  # fmt: skip
        checks = [(Customer, "account_id", Account)] + [
            (child, f"{name}_id", model)
            for child, references in (
                (Interaction, (("customer", Customer), *where)),
                (Invitation, (("survey", Survey), ("customer", Customer), ("wave", Wave),
                              ("interaction", Interaction), *where)),
                (Response, (("survey", Survey), ("invitation", Invitation),
                            ("customer", Customer), ("interaction", Interaction), *where)),
                (Decision, (("survey", Survey), ("customer", Customer),
                            ("interaction", Interaction), ("invitation", Invitation))),
            )
            for name, model in references
        ]  # fmt: skip
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            for child, column, parent in checks:
                cursor.execute(
                    f"SELECT count(*) FROM {quote(child._meta.db_table)} c "
                    f"WHERE c.workspace_id = %s AND c.{column} IS NOT NULL AND NOT EXISTS "
                    f"(SELECT 1 FROM {quote(parent._meta.db_table)} p WHERE p.id = c.{column})",
                    [workspace.pk],
                )
                dangling = cursor.fetchone()[0]
                if dangling:
                    raise RuntimeError(
                        f"{dangling} {child._meta.model_name} rows reference a missing "
                        f"{parent._meta.model_name}: was it deleted during the run?"
                    )

    def ids(self, model: type[Any], workspace: Workspace, first: str, last: str) -> IntArray:
        """Ids of the rows with external ids first…last, in external-id order."""
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {table} WHERE workspace_id = %s AND external_id >= %s "
                "AND external_id <= %s ORDER BY external_id",
                [workspace.pk, first, last],
            )
            return np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)


# --- the organisation -----------------------------------------------------------------------


@dataclass
class Org:
    """Indices and database ids the customer and interaction chunks draw from."""

    branch_region: IntArray
    branch_pk: IntArray
    store_index: IntArray  # branches that are stores (customers' home branches)
    store_cdf: FloatArray
    contact_centre: int
    # pools[pool, branch, slot] → employee index; pool_size[pool, branch]; -1 pads.
    pools: IntArray
    pool_size: IntArray
    employee_pk: IntArray
    product_pk: IntArray
    product_family: IntArray
    product_b2b: BoolArray
    product_codes: tuple[str, ...]
    channel_pk: IntArray
    touchpoint_index: dict[str, int]
    touchpoint_pk: IntArray
    touchpoint_channel: IntArray  # index into CHANNELS, -1 for none
    touchpoint_staff: IntArray  # pool, NOBODY or COURIER
    counts: dict[str, int]


def _person(rng: np.random.Generator, russian_share: float) -> tuple[str, str, str]:
    """A staff member's name (Latin script) and the ASCII parts of their address."""
    female = bool(rng.random() < 0.55)
    firsts: tuple[str, ...]
    if rng.random() < russian_share:
        firsts = RU_FEMALE_LATIN if female else RU_MALE_LATIN
        last = str(rng.choice(RU_LAST_LATIN))
        last = russian_female(last) if female else last
    else:
        firsts = RO_FEMALE if female else RO_MALE
        last = str(rng.choice(RO_LAST))
    first = str(rng.choice(firsts))
    return f"{first} {last}", ascii_name(first), ascii_name(last)


def _front_line_counts(weights: list[float], total: int) -> list[int]:
    """One per team, the rest in proportion to the weights (largest remainder)."""
    counts = [1] * len(weights)
    rest = total - len(weights)
    shares = np.array(weights) / sum(weights) * rest
    extra = np.floor(shares).astype(int)
    order = np.argsort(-(shares - extra), kind="stable")
    extra[order[: rest - int(extra.sum())]] += 1
    return [c + int(e) for c, e in zip(counts, extra, strict=True)]


def build_organisation(workspace: Workspace, rng: np.random.Generator, employees: int) -> Org:
    """Regions, branches, teams, staff with their reporting lines, products, channels and
    journeys, through the ORM: a few hundred rows, not worth a faster path."""
    ws = workspace
    regions = Region.objects.bulk_create(
        [Region(workspace=ws, code=code, name=name) for code, name, _ in REGIONS]
    )
    region_of = {r.code: i for i, r in enumerate(regions)}
    branches = Branch.objects.bulk_create([
        Branch(workspace=ws, code=code, name=name, region=regions[region_of[region]], city=city,
               time_zone=TIME_ZONE)
        for code, name, region, city, _, _ in BRANCHES
    ])  # fmt: skip
    teams: list[Team] = []
    team_meta: list[tuple[int, str, int, float]] = []  # branch, kind, pool, weight
    for b, (_, _, _, _, weight, layout) in enumerate(BRANCHES):
        for t, (kind, name, pool, team_weight) in enumerate(TEAM_LAYOUTS[layout], start=1):
            code = f"T{b + 1:02d}{t:02d}"
            teams.append(Team(workspace=ws, code=code, name=f"{branches[b].name} — {name}",
                              branch=branches[b]))  # fmt: skip
            team_meta.append((b, kind, pool, team_weight * (weight or 1.0)))
    teams = Team.objects.bulk_create(teams)

    managers = len(REGIONS) + len(BRANCHES) + len(teams)
    if employees < managers + len(teams):
        raise ValueError(f"the organisation needs at least {managers + len(teams)} employees")
    staff = _front_line_counts([m[3] for m in team_meta], employees - managers)

    # (name, ascii first, ascii last, title, branch, team, supervisor index, pool)
    people: list[tuple[str, str, str, str, int | None, int | None, int | None, int]] = []
    russian = {code: mix[1] for code, _, mix in REGIONS}
    for code, _, _ in REGIONS:
        people.append((*_person(rng, russian[code]), "regional director", None, None, None, -1))
    branch_manager: list[int] = []
    for b, (_, _, region, _, _, _) in enumerate(BRANCHES):
        director = region_of[region]
        branch_manager.append(len(people))
        people.append((*_person(rng, russian[region]), "branch manager", b, None, director, -1))
        for t, (tb, kind, pool, _) in enumerate(team_meta):
            if tb != b:
                continue
            supervisor = len(people)
            people.append((*_person(rng, russian[region]), "team supervisor", b, t,
                           branch_manager[b], pool))  # fmt: skip
            for k in range(staff[t]):
                title = "cashier" if k == 1 and kind in CASHIER_TEAMS else STAFF_TITLE[kind]
                people.append((*_person(rng, russian[region]), title, b, t, supervisor, pool))

    emails: set[str] = set()
    rows = []
    for i, (name, first, last, title, b_i, t_i, _, _) in enumerate(people):
        email = f"{first}.{last}@{STAFF_DOMAIN}"
        n = 1
        while email in emails:
            n += 1
            email = f"{first}.{last}{n}@{STAFF_DOMAIN}"
        emails.add(email)
        rows.append(Employee(
            workspace=ws, code=f"E{i + 1:04d}", name=name, title=title, email=email,
            branch=branches[b_i] if b_i is not None else None,
            team=teams[t_i] if t_i is not None else None,
        ))  # fmt: skip
    staff_rows = Employee.objects.bulk_create(rows)
    for row, person in zip(staff_rows, people, strict=True):
        row.supervisor = staff_rows[person[6]] if person[6] is not None else None
    Employee.objects.bulk_update(staff_rows, ["supervisor"])
    for b, branch in enumerate(branches):
        branch.manager = staff_rows[branch_manager[b]]
    Branch.objects.bulk_update(branches, ["manager"])

    # Pools: supervisors serve customers too, but less than their staff.
    slots: list[list[list[int]]] = [[[] for _ in BRANCHES] for _ in range(4)]
    for i, (_, _, _, title, b_i, _, _, pool) in enumerate(people):
        if pool >= 0 and b_i is not None:
            slots[pool][b_i] += [i] * (1 if title == "team supervisor" else 3)
    width = max(len(s) for per_pool in slots for s in per_pool)
    pools = np.full((4, len(BRANCHES), width), -1, dtype=np.int64)
    pool_size = np.zeros((4, len(BRANCHES)), dtype=np.int64)
    for p, per_pool in enumerate(slots):
        for b, s in enumerate(per_pool):
            pools[p, b, : len(s)] = s
            pool_size[p, b] = len(s)

    products = Product.objects.bulk_create([
        Product(workspace=ws, code=code, name=name, category=category)
        for code, name, category, _, _ in PRODUCTS
    ])  # fmt: skip
    channels = Channel.objects.bulk_create(
        [Channel(workspace=ws, code=code, name=name) for code, name in CHANNELS]
    )
    channel_of = {code: i for i, (code, _) in enumerate(CHANNELS)}
    journeys = Journey.objects.bulk_create(
        [Journey(workspace=ws, code=code, name=name) for code, name, _ in JOURNEYS]
    )
    stage_rows: list[Stage] = []
    tp_specs: list[tuple[int, str, str, str | None, int]] = []
    for journey, (_, _, stages) in zip(journeys, JOURNEYS, strict=True):
        for position, (s_code, s_name, stage_touchpoints) in enumerate(stages, start=1):
            stage_rows.append(Stage(workspace=ws, code=s_code, name=s_name, journey=journey,
                                    position=position))  # fmt: skip
            for tp_code, tp_name, channel, staffing in stage_touchpoints:
                tp_specs.append((len(stage_rows) - 1, tp_code, tp_name, channel, staffing))
    stage_rows = Stage.objects.bulk_create(stage_rows)
    touchpoints = Touchpoint.objects.bulk_create([
        Touchpoint(workspace=ws, code=code, name=name, stage=stage_rows[s],
                   channel=channels[channel_of[channel]] if channel else None)
        for s, code, name, channel, _ in tp_specs
    ])  # fmt: skip

    stores = [b for b, spec in enumerate(BRANCHES) if spec[5] != CONTACT_CENTRE]
    return Org(
        branch_region=np.array([region_of[b[2]] for b in BRANCHES], dtype=np.int64),
        branch_pk=np.array([b.pk for b in branches], dtype=np.int64),
        store_index=np.array(stores, dtype=np.int64),
        store_cdf=_cdf([BRANCHES[b][4] for b in stores]),
        contact_centre=next(b for b, spec in enumerate(BRANCHES) if spec[5] == CONTACT_CENTRE),
        pools=pools,
        pool_size=pool_size,
        employee_pk=np.array([e.pk for e in staff_rows], dtype=np.int64),
        product_pk=np.array([p.pk for p in products], dtype=np.int64),
        product_family=np.array([FAMILIES.index(p[3]) for p in PRODUCTS], dtype=np.int64),
        product_b2b=np.array([p[2] == "b2b" for p in PRODUCTS], dtype=np.bool_),
        product_codes=tuple(p[0] for p in PRODUCTS),
        channel_pk=np.array([c.pk for c in channels], dtype=np.int64),
        touchpoint_index={spec[1]: i for i, spec in enumerate(tp_specs)},
        touchpoint_pk=np.array([t.pk for t in touchpoints], dtype=np.int64),
        touchpoint_channel=np.array(
            [channel_of[s[3]] if s[3] else -1 for s in tp_specs], dtype=np.int64
        ),
        touchpoint_staff=np.array([s[4] for s in tp_specs], dtype=np.int64),
        counts={
            "regions": len(regions), "branches": len(branches), "teams": len(teams),
            "employees": len(staff_rows), "products": len(products),
            "channels": len(channels), "journeys": len(journeys), "stages": len(stage_rows),
            "touchpoints": len(touchpoints),
        },
    )  # fmt: skip


# --- customers ------------------------------------------------------------------------------

CUSTOMER_COLUMNS = (
    "workspace_id", "external_id", "name", "email", "phone", "language", "time_zone", "segment",
    "is_b2b", "account_id", "consent", "attributes", "created_at", "updated_at",
)  # fmt: skip
ACCOUNT_COLUMNS = ("workspace_id", "external_id", "name", "created_at", "updated_at")
CONSENT_JSON = tuple(
    json.dumps({"email": bool(e), "sms": bool(s)}) for e in (False, True) for s in (False, True)
)


@dataclass
class Population:
    """What interactions need to know about each customer, index = customer number - 1."""

    pk: IntArray
    # Small integers: at a million customers every byte per customer is a megabyte.
    home: SmallArray
    main_product: SmallArray
    b2b: BoolArray
    activity: FloatArray
    # What the surveys need: the language (index into LANGUAGES), how the customer can be
    # reached (REACH_* bits), the company (number among all accounts, -1 for none), segment.
    language: TinyArray
    reach: TinyArray
    account: npt.NDArray[np.int32]
    segment: TinyArray

    @classmethod
    def join(cls, parts: Sequence[Population]) -> Population:
        return cls(**{
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in cls.__dataclass_fields__
        })  # fmt: skip


# How a customer can be reached, as bits of Population.reach.
REACH_EMAIL, REACH_EMAIL_CONSENT, REACH_PHONE, REACH_SMS_CONSENT = 1, 2, 4, 8


def _segment_product_cdfs() -> FloatArray:
    codes = [p[0] for p in PRODUCTS]
    table = np.zeros((len(SEGMENTS), len(PRODUCTS)))
    for s, segment in enumerate(SEGMENTS):
        for code, weight in SEGMENT_MAIN_PRODUCT[segment]:
            table[s, codes.index(code)] = weight
    return np.array([_cdf(row) for row in table])


class CustomerMaker:
    """Customers chunk by chunk; each chunk draws from its own generator."""

    def __init__(
        self, workspace: Workspace, options: DemoOptions, org: Org, window_start: dt.date
    ) -> None:
        self.ws_pk = workspace.pk
        self.options = options
        self.org = org
        self.window_start = window_start
        self.width = max(7, len(str(options.customers)))
        self.account_width = max(6, len(str(options.customers)))
        self.b2c_segment_cdf = _cdf([w for _, w in B2C_SEGMENTS])
        self.email_style_cdf = _cdf(EMAIL_STYLES)
        self.product_cdf = _segment_product_cdfs()
        region_mix = np.array([mix for _, _, mix in REGIONS])
        self.language_cdf = np.cumsum(region_mix, axis=1)
        self.language_cdf[:, -1] = 1.0
        self.name_sizes = np.array([[len(m), len(f)] for m, f in NAMES.first], dtype=np.int64)
        self.last_sizes = np.array([[len(m), len(f)] for m, f in NAMES.last], dtype=np.int64)
        self.phone_offset = int(np.random.default_rng([options.seed, ORG_STREAM, 1]).integers(
            0, PHONE_SPACE))  # fmt: skip
        self.accounts_made = 0

    def external_id(self, number: int) -> str:
        return f"C{number:0{self.width}d}"

    def chunk(
        self, chunk_no: int, start: int, n: int, created: str
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], Population]:
        """Account rows, customer rows (their account_id is the account's position among
        this chunk's accounts, until the accounts have ids) and what interactions need."""
        rng = np.random.default_rng([self.options.seed, CUSTOMER_STREAM, chunk_no])
        org = self.org
        home = org.store_index[_pick(rng, org.store_cdf, n)]
        region = org.branch_region[home]
        b2b = rng.random(n) < B2B_SHARE
        language = (rng.random(n)[:, None] >= self.language_cdf[region]).sum(axis=1)
        abroad = (rng.random(n) < ABROAD_SHARE) & ~b2b
        abroad_zone = rng.integers(0, len(ABROAD_TIME_ZONES), n)
        female = (rng.random(n) < 0.52).astype(np.int64)
        first = _skewed_index(rng, self.name_sizes[language, female])
        last = _skewed_index(rng, self.last_sizes[language, female])

        # B2B contacts come in companies of one to a handful of people.
        b2b_positions = np.flatnonzero(b2b)
        k = len(b2b_positions)
        sizes = rng.geometric(0.45, size=max(k, 1))
        ends = np.cumsum(sizes)
        n_accounts = int(np.searchsorted(ends, k)) + 1 if k else 0
        account_of = np.full(n, -1, dtype=np.int64)
        account_of[b2b_positions] = np.searchsorted(ends, np.arange(k), side="right")
        corporate = rng.random(n_accounts) < CORPORATE_SHARE
        accounts_before = self.accounts_made
        account_rows, account_domains = self._accounts(rng, n_accounts, corporate, created)

        segment = _pick(rng, self.b2c_segment_cdf, n)
        segment[b2b_positions] = np.where(
            corporate[account_of[b2b_positions]], CORPORATE, SMALL_BUSINESS
        )
        main_product = (rng.random(n)[:, None] >= self.product_cdf[segment]).sum(axis=1)

        youth, senior = segment == YOUTH, segment == SENIOR
        has_email = rng.random(n) < np.select([b2b, senior, youth], [0.97, 0.55, 0.95], 0.88)
        # Few people still get the bare first.last; the numbers keep addresses of namesakes
        # apart (under 1 % shared at 100,000 customers, about 6 % at a million).
        email_style = _pick(rng, self.email_style_cdf, n)
        email_number = rng.integers(1, 10_000, n)
        email_domain = rng.integers(0, len(EMAIL_DOMAINS), n)
        has_phone = rng.random(n) < np.where(b2b, 0.99, 0.96)
        consent_email = rng.random(n) < 0.9
        consent_sms = rng.random(n) < np.select([b2b, senior, youth], [0.6, 0.3, 0.55], 0.45)
        tenure_days = np.minimum(rng.gamma(1.5, 900.0, n), 365 * 19).astype(np.int64)
        tenure_days = np.where(youth, tenure_days // 4, tenure_days)
        birth_year = np.select(
            [youth, senior],
            [rng.integers(1999, 2008, n), rng.integers(1938, 1960, n)],
            rng.integers(1960, 1999, n),
        )
        activity = rng.gamma(1.3, 1 / 1.3, n) * np.array(SEGMENT_ACTIVITY)[segment]
        activity = np.where(abroad, activity * 0.3, activity)

        numbers = np.arange(start + 1, start + n + 1, dtype=np.int64)
        phone_key = (numbers * PHONE_MULTIPLIER + self.phone_offset) % PHONE_SPACE
        phones = [
            f"+373{PHONE_PREFIXES[k // 1_000_000]}{k % 1_000_000:06d}" if has else ""
            for k, has in zip(phone_key.tolist(), has_phone.tolist(), strict=True)
        ]
        since = [
            (self.window_start - dt.timedelta(days=d)).isoformat() for d in tenure_days.tolist()
        ]
        time_zones = [
            ABROAD_TIME_ZONES[z] if a else TIME_ZONE
            for z, a in zip(abroad_zone.tolist(), abroad.tolist(), strict=True)
        ]
        consents = [
            CONSENT_JSON[2 * e + s]
            for e, s in zip(consent_email.tolist(), consent_sms.tolist(), strict=True)
        ]
        domains = [
            account_domains[a] if a >= 0 else EMAIL_DOMAINS[d]
            for a, d in zip(account_of.tolist(), email_domain.tolist(), strict=True)
        ]
        branch_codes = [b[0] for b in BRANCHES]
        rows: list[tuple[Any, ...]] = []
        columns = zip(
            numbers.tolist(), language.tolist(), female.tolist(), first.tolist(), last.tolist(),
            has_email.tolist(), email_style.tolist(), email_number.tolist(), birth_year.tolist(),
            domains, phones, time_zones, segment.tolist(), account_of.tolist(), consents,
            home.tolist(), main_product.tolist(), since,
            strict=True,
        )  # fmt: skip
        for (number, lang, sex, f, la, has_email_, style, suffix, born, domain, phone, zone,
             seg, account, consent, branch, product, joined) in columns:  # fmt: skip
            email = ""
            if has_email_:
                fa, ln = NAMES.first_ascii[lang][sex][f], NAMES.last_ascii[lang][sex][la]
                if style == 0:
                    local = f"{fa}.{ln}"
                elif style == 1:
                    local = f"{fa}{ln}{born}"
                elif style == 2:
                    local = f"{fa[0]}.{ln}{suffix}"
                else:
                    local = f"{ln}.{fa}{suffix}"
                email = f"{local}@{domain}"
            b2b_row = account >= 0
            attributes = (
                f'{{"home_branch": "{branch_codes[branch]}", '
                f'"main_product": "{PRODUCTS[product][0]}", "customer_since": "{joined}"'
                + ("}" if b2b_row else f', "birth_year": {born}}}')
            )
            rows.append((
                self.ws_pk, self.external_id(number),
                f"{NAMES.first[lang][sex][f]} {NAMES.last[lang][sex][la]}", email, phone,
                LANGUAGES[lang], zone, SEGMENTS[seg], b2b_row, account if b2b_row else None,
                consent, attributes, created, created,
            ))  # fmt: skip
        reach = (
            has_email * REACH_EMAIL + consent_email * REACH_EMAIL_CONSENT
            + has_phone * REACH_PHONE + consent_sms * REACH_SMS_CONSENT
        )  # fmt: skip
        population = Population(
            pk=np.zeros(n, dtype=np.int64),
            home=home.astype(np.int16),
            main_product=main_product.astype(np.int16),
            b2b=b2b,
            activity=activity,
            language=language.astype(np.int8),
            reach=reach.astype(np.int8),
            account=np.where(account_of >= 0, account_of + accounts_before, -1).astype(np.int32),
            segment=segment.astype(np.int8),
        )
        return account_rows, rows, population

    def _accounts(
        self, rng: np.random.Generator, n: int, corporate: BoolArray, created: str
    ) -> tuple[list[tuple[Any, ...]], list[str]]:
        rows: list[tuple[Any, ...]] = []
        domains: list[str] = []
        words = rng.integers(0, len(COMPANY_WORDS), n)
        suffixes = rng.integers(0, len(COMPANY_SUFFIXES), n)
        forms = rng.random(n)
        for a in range(n):
            self.accounts_made += 1
            word, suffix = COMPANY_WORDS[words[a]], COMPANY_SUFFIXES[suffixes[a]]
            choices = COMPANY_FORMS_CORPORATE if corporate[a] else COMPANY_FORMS_SMALL
            form = choices[int(forms[a] * len(choices))]
            name = f"{form} {word}-{suffix}" if a % 3 == 0 else f"{form} {word} {suffix}"
            rows.append((self.ws_pk, f"A{self.accounts_made:0{self.account_width}d}", name,
                         created, created))  # fmt: skip
            domains.append(f"{ascii_name(word + suffix)}{self.accounts_made}.example")
        return rows, domains


# --- interactions ---------------------------------------------------------------------------

INTERACTION_COLUMNS = (
    "workspace_id", "source", "external_id", "customer_id", "type", "occurred_at",
    "touchpoint_id", "branch_id", "employee_id", "product_id", "channel_id", "attributes",
    "created_at",
)  # fmt: skip


class Timeline:
    """Local days of the window with their weights, and the UTC offset of each local hour."""

    def __init__(self, end: dt.datetime, months: int) -> None:
        tz = zoneinfo.ZoneInfo(TIME_ZONE)
        self.end = end
        self.days = round(months * 365.25 / 12)
        last_local = end.astimezone(tz).date()  # its own day is not covered: it is not over
        self.first_day = last_local - dt.timedelta(days=self.days)
        dates = [self.first_day + dt.timedelta(days=d) for d in range(self.days)]
        epoch = dt.date(1970, 1, 1)
        self.day_base = np.array([(d - epoch).days * 86400 for d in dates], dtype=np.int64)
        self.offset = np.array([
            [int(dt.datetime(d.year, d.month, d.day, h, 30, tzinfo=tz).utcoffset()
                 .total_seconds())  # type: ignore[union-attr]
             for h in range(24)]
            for d in dates
        ], dtype=np.int64)  # fmt: skip
        weekday = np.array([d.weekday() for d in dates], dtype=np.int64)
        self.weekday = weekday
        holiday = np.array([(d.month, d.day) in HOLIDAYS for d in dates])
        day_of_year = np.array([d.timetuple().tm_yday for d in dates])
        # Busiest before the New Year, quietest in midsummer; a growing business.
        season = 1 + 0.12 * np.cos(2 * np.pi * (day_of_year - 350) / 365.25)
        growth = 0.92 + 0.16 * np.arange(self.days) / max(self.days - 1, 1)
        # Bills are issued on the 1st and due on the 20th.
        dom = np.array([d.day for d in dates])
        bill_cycle = np.select([dom <= 4, dom <= 20], [0.9, 1.3], 0.55)
        self.day_cdf = np.zeros((len(WEEKDAY_WEIGHTS) * 2, self.days))
        for kind in range(len(WEEKDAY_WEIGHTS)):
            base = WEEKDAY_WEIGHTS[kind][weekday] * season * growth
            base = np.where(holiday, base * HOLIDAY_FACTOR[kind], base)
            self.day_cdf[kind * 2] = _cdf(base)
            self.day_cdf[kind * 2 + 1] = _cdf(base * bill_cycle)
        self.hour_cdf = np.array([_cdf(row) for row in HOUR_WEIGHTS])

    @property
    def last_day(self) -> dt.date:
        return self.first_day + dt.timedelta(days=self.days - 1)


@dataclass
class DrawnChunk:
    """A chunk of interactions as the arrays they were drawn as (index: row in the chunk), for
    what is built from them afterwards (the demo's surveys). Indices, as in ``Org``; -1 for
    none."""

    numbers: IntArray
    customer: IntArray
    touchpoint: IntArray
    branch: IntArray
    employee: IntArray
    product: IntArray
    channel: IntArray
    day: IntArray  # of the time line
    hour: IntArray  # local
    utc: IntArray  # epoch seconds
    wait: IntArray  # minutes in the queue, for store visits


class InteractionMaker:
    def __init__(
        self, options: DemoOptions, org: Org, people: Population, timeline: Timeline
    ) -> None:
        self.options = options
        self.org = org
        self.people = people
        self.timeline = timeline
        self.activity_cdf = np.cumsum(people.activity)
        self.type_cdf = _cdf([t.share for t in TYPES])
        n_tp = len(org.touchpoint_pk)
        tp_weights = np.zeros((len(TYPES), n_tp))
        for t, spec in enumerate(TYPES):
            for code, weight in spec.touchpoints:
                tp_weights[t, org.touchpoint_index[code]] = weight
        self.tp_cdf = np.array([_cdf(row) for row in tp_weights])
        # Products asked about by type and audience (B2C, B2B); B2B customers get business
        # products where the family has them, the consumer devices and TV otherwise.
        n_products = len(PRODUCTS)
        popularity = np.array([p[4] for p in PRODUCTS])
        self.product_cdf = np.zeros((len(TYPES), 2, n_products))
        self.main_allowed = np.zeros((len(TYPES), n_products), dtype=np.bool_)
        for t, spec in enumerate(TYPES):
            for audience in (0, 1):
                weights = np.zeros(n_products)
                for family, share in spec.families:
                    f = FAMILIES.index(family)
                    members = org.product_family == f
                    candidates = members & (org.product_b2b == bool(audience))
                    if not candidates.any():
                        candidates = members & ~org.product_b2b
                    w = np.where(candidates, popularity, 0.0)
                    weights += share * w / w.sum()
                self.product_cdf[t, audience] = _cdf(weights)
            families = [FAMILIES.index(f) for f, _ in spec.families]
            self.main_allowed[t] = np.isin(org.product_family, families)
        self.type_payment = np.array([t.payment for t in TYPES], dtype=np.int64)
        self.tp_kind = np.array(
            [CHANNEL_KIND[CHANNELS[c][0] if c >= 0 else None] for c in org.touchpoint_channel],
            dtype=np.int64,
        )
        self.type_names = np.array([t.name for t in TYPES] + [None], dtype=object)
        self.type_source = np.array([t.source for t in TYPES], dtype=object)
        self.nullable = {
            "touchpoint": np.array([*org.touchpoint_pk.tolist(), None], dtype=object),
            "branch": np.array([*org.branch_pk.tolist(), None], dtype=object),
            "employee": np.array([*org.employee_pk.tolist(), None], dtype=object),
            "product": np.array([*org.product_pk.tolist(), None], dtype=object),
            "channel": np.array([*org.channel_pk.tolist(), None], dtype=object),
        }
        self.region_codes = [code.removeprefix("R-") for code, _, _ in REGIONS]
        # The crowd at a store's counter by day of the history (the queue problem of one
        # store, fixed two thirds in) and by local hour; see STORE_WAIT_WEEKDAY.
        fix = int(timeline.days * WAITING_FIX_AT)
        recovery = np.clip((np.arange(timeline.days) - fix) / max(timeline.days - fix, 1), 0, 1)
        self.waiting_branch = next(
            b for b, spec in enumerate(BRANCHES) if spec[0] == WAITING_BRANCH
        )
        self.waiting_factor = STORE_WAIT_BEFORE_FIX - (STORE_WAIT_BEFORE_FIX - 1) * recovery
        self.day_crowd = STORE_WAIT_WEEKDAY[timeline.weekday]
        self.hour_crowd = np.where(np.arange(24) >= EVENING_HOUR, STORE_WAIT_EVENING, 1.0)

    def chunk(
        self, chunk_no: int, start: int, n: int, writer: RowWriter, created: str, ws_pk: int
    ) -> tuple[list[tuple[Any, ...]], DrawnChunk]:
        """Rows for interactions number start + 1 … start + n, in INTERACTION_COLUMNS order,
        and the arrays they were made from."""
        rng = np.random.default_rng([self.options.seed, INTERACTION_STREAM, chunk_no])
        org, people, timeline = self.org, self.people, self.timeline
        customer = np.searchsorted(
            self.activity_cdf, rng.random(n) * self.activity_cdf[-1], side="right"
        )
        customer = np.minimum(customer, len(self.activity_cdf) - 1)
        itype = _pick(rng, self.type_cdf, n)
        tp = _pick_rows(rng, self.tp_cdf[itype])
        b2b = people.b2b[customer].astype(np.int64)
        other_product = _pick_rows(rng, self.product_cdf[itype, b2b])
        main = people.main_product[customer]
        use_main = self.main_allowed[itype, main] & (rng.random(n) < MAIN_PRODUCT_SHARE)
        product = np.where(use_main, main, other_product)
        channel = org.touchpoint_channel[tp]

        # Where and by whom: the home store (sometimes another), the home branch's
        # technicians, or the contact centre.
        staff = org.touchpoint_staff[tp]
        home = people.home[customer]
        wander = rng.random(n) < WANDER_SHARE
        elsewhere = org.store_index[_pick(rng, org.store_cdf, n)]
        branch = np.select(
            [staff == STORE_POOL, (staff == FIELD_POOL) | (staff == COURIER),
             (staff == VOICE_POOL) | (staff == CHAT_POOL)],
            [np.where(wander, elsewhere, home), home, org.contact_centre],
            -1,
        )  # fmt: skip
        pool = np.where(staff >= 0, staff, 0)
        size = org.pool_size[pool, np.maximum(branch, 0)]
        slot = (rng.random(n) * np.maximum(size, 1)).astype(np.int64)
        employee = np.where(
            (staff >= 0) & (size > 0), org.pools[pool, np.maximum(branch, 0), slot], -1
        )

        # When, in local time, then in UTC.
        kind = self.tp_kind[tp]
        profile = kind * 2 + self.type_payment[itype]
        day = np.zeros(n, dtype=np.int64)
        u = rng.random(n)
        for p in range(len(timeline.day_cdf)):
            mask = profile == p
            day[mask] = np.searchsorted(timeline.day_cdf[p], u[mask], side="right")
        day = np.minimum(day, timeline.days - 1)
        hour = _pick_rows(rng, timeline.hour_cdf[kind])
        seconds = rng.integers(0, 3600, n)
        utc = timeline.day_base[day] + hour * 3600 + seconds - timeline.offset[day, hour]

        numbers = np.arange(start + 1, start + n + 1, dtype=np.int64)
        crowd = self.day_crowd[day] * self.hour_crowd[hour]
        crowd = np.where(branch == self.waiting_branch, crowd * self.waiting_factor[day], crowd)
        attributes, wait = self._attributes(
            rng, itype, numbers, b2b, channel, people.home[customer], crowd
        )
        sources = self.type_source[itype].tolist()
        external_ids = [
            f"{SOURCE_PREFIX[s]}{number:09d}"
            for s, number in zip(sources, numbers.tolist(), strict=True)
        ]
        rows = list(zip(
            itertools.repeat(ws_pk), sources, external_ids, people.pk[customer].tolist(),
            self.type_names[itype].tolist(), writer.timestamps(utc),
            self.nullable["touchpoint"][tp].tolist(), self.nullable["branch"][branch].tolist(),
            self.nullable["employee"][employee].tolist(),
            self.nullable["product"][product].tolist(),
            self.nullable["channel"][channel].tolist(), attributes, itertools.repeat(created),
            strict=False,
        ))  # fmt: skip
        drawn = DrawnChunk(
            numbers=numbers, customer=customer, touchpoint=tp, branch=branch,
            employee=employee, product=product, channel=channel, day=day, hour=hour, utc=utc,
            wait=wait,
        )  # fmt: skip
        return rows, drawn

    def _attributes(
        self,
        rng: np.random.Generator,
        itype: IntArray,
        numbers: IntArray,
        b2b: IntArray,
        channel: IntArray,
        home: IntArray,
        crowd: FloatArray,
    ) -> tuple[list[str], IntArray]:
        """Type-specific details, the kind a CRM export carries, as JSON text; and the store
        waits (minutes, every row) for the surveys."""
        n = len(itype)
        out = np.empty(n, dtype=object)
        names = [t.name for t in TYPES]
        # Draw every column for every row, so a row's details do not depend on the others.
        talk = np.clip(rng.lognormal(np.log(240), 0.6, n), 20, 3600).astype(np.int64)
        short = np.clip(rng.lognormal(np.log(90), 0.8, n), 3, 1800).astype(np.int64)
        wait = rng.exponential(60, n).astype(np.int64)
        messages = 2 + rng.poisson(6, n)
        store_wait = np.minimum(rng.gamma(2.0, 4.0, n) * crowd, 90).astype(np.int64)
        minutes = rng.normal(75, 25, n).clip(15, 240).astype(np.int64)
        items = 1 + rng.poisson(0.4, n)
        slot = rng.integers(0, 3, n)
        delay = 1 + rng.exponential(10, n).astype(np.int64)
        fixed = rng.random(n) < 0.85
        amount = np.round(rng.lognormal(np.log(180), 0.5, n) * np.where(b2b == 1, 6, 1), 2)
        cash = rng.random(n) < 0.6
        reason = rng.integers(0, 4, n)
        cell = rng.integers(1, 400, n)
        slots = ("09-13", "13-17", "17-21")
        reasons = ("card_declined", "insufficient_funds", "3ds_timeout", "bank_unavailable")
        methods = np.where((channel == CHANNELS.index(("store", "Store"))) & cash, "cash", "card")
        cells = np.array(self.region_codes)[self.org.branch_region[home]]
        for t, name in enumerate(names):
            rows = np.flatnonzero(itype == t)
            if not len(rows):
                continue

            def col(values: npt.NDArray[Any], rows: IntArray = rows) -> list[Any]:
                return values[rows].tolist()

            ids = col(numbers)
            values: list[str]
            if name == "call":
                values = [f'{{"duration_s": {d}, "wait_s": {w}}}'
                          for d, w in zip(col(talk), col(wait), strict=True)]  # fmt: skip
            elif name == "dropped_call":
                values = [
                    f'{{"duration_s": {d}, "cell_id": "{r}-{c:04d}"}}'
                    for d, r, c in zip(col(short), col(cells), col(cell), strict=True)
                ]
            elif name == "chat":
                values = [f'{{"duration_s": {d + 120}, "messages": {m}}}'
                          for d, m in zip(col(talk), col(messages), strict=True)]  # fmt: skip
            elif name == "store_visit":
                values = [f'{{"wait_min": {w}}}' for w in col(store_wait)]
            elif name == "online_order":
                values = [f'{{"order_id": "ORD{i:09d}", "items": {k}}}'
                          for i, k in zip(ids, col(items), strict=True)]  # fmt: skip
            elif name == "delivery":
                values = [f'{{"order_id": "ORD{i:09d}", "slot": "{slots[k]}"}}'
                          for i, k in zip(ids, col(slot), strict=True)]  # fmt: skip
            elif name == "late_delivery":
                values = [f'{{"order_id": "ORD{i:09d}", "delay_h": {h}}}'
                          for i, h in zip(ids, col(delay), strict=True)]  # fmt: skip
            elif name == "installation":
                values = [f'{{"job_id": "JOB{i:09d}", "duration_min": {m}}}'
                          for i, m in zip(ids, col(minutes), strict=True)]  # fmt: skip
            elif name == "service_job":
                values = [
                    f'{{"job_id": "JOB{i:09d}", "duration_min": {m - 15}, '
                    f'"fixed_first_time": {"true" if f else "false"}}}'
                    for i, m, f in zip(ids, col(minutes), col(fixed), strict=True)
                ]
            elif name == "bill_payment":
                values = [f'{{"amount_mdl": {a:.2f}, "method": "{m}"}}'
                          for a, m in zip(col(amount), col(methods), strict=True)]  # fmt: skip
            elif name == "failed_payment":
                values = [f'{{"amount_mdl": {a:.2f}, "reason": "{reasons[r]}"}}'
                          for a, r in zip(col(amount), col(reason), strict=True)]  # fmt: skip
            else:
                values = ["{}"] * len(rows)
            out[rows] = values
        return [str(v) for v in out.tolist()], store_wait


# --- the whole run --------------------------------------------------------------------------


def _chunks(total: int, size: int) -> list[tuple[int, int, int]]:
    return [(no, start, min(size, total - start))
            for no, start in enumerate(range(0, total, size))]  # fmt: skip


def generate_demo(
    workspace: Workspace, options: DemoOptions, progress: Progress | None = None
) -> DemoSummary:
    """Fill an empty workspace with the demo company; see the module's docstring."""
    if options.customers < 0 or options.interactions < 0:
        raise ValueError("counts cannot be negative")
    if options.interactions and not options.customers:
        raise ValueError("interactions need customers")
    if options.months < 1:
        raise ValueError("months must be at least 1")
    if options.chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    if options.end is not None and options.end.utcoffset() is None:
        raise ValueError("end must be an aware datetime")
    progress = progress or NoProgress()
    with RowWriter() as writer:
        summary = _generate(workspace, options, progress, writer)
        writer.analyze()
        writer.verify(workspace)
    return summary


def _generate(
    workspace: Workspace, options: DemoOptions, progress: Progress, writer: RowWriter
) -> DemoSummary:
    began = time.monotonic()
    created = writer.timestamp(clock.now())
    timeline = Timeline(options.end or default_end(), options.months)

    progress.start("organisation", 1)
    with transaction.atomic():
        org = build_organisation(
            workspace, np.random.default_rng([options.seed, ORG_STREAM]), options.employees
        )
    progress.advance(1)
    summary = DemoSummary(counts=dict(org.counts))

    maker = CustomerMaker(workspace, options, org, timeline.first_day)
    parts: list[Population] = []
    progress.start("customers", options.customers)
    for no, start, n in _chunks(options.customers, options.chunk_size):
        account_rows, rows, population = maker.chunk(no, start, n, created)
        if account_rows:
            writer.write(Account, ACCOUNT_COLUMNS, account_rows)
            account_pk = writer.ids(Account, workspace, account_rows[0][1], account_rows[-1][1])
            if len(account_pk) != len(account_rows):
                raise RuntimeError("account ids do not match the rows written")
            account_column = CUSTOMER_COLUMNS.index("account_id")
            rows = [
                row if row[account_column] is None
                else (*row[:account_column], int(account_pk[row[account_column]]),
                      *row[account_column + 1 :])
                for row in rows
            ]  # fmt: skip
        writer.write(Customer, CUSTOMER_COLUMNS, rows)
        population.pk = writer.ids(Customer, workspace, rows[0][1], rows[-1][1])
        if len(population.pk) != n:
            raise RuntimeError("customer ids do not match the rows written")
        parts.append(population)
        progress.advance(n)
    summary.counts["accounts"] = maker.accounts_made
    summary.counts["customers"] = options.customers

    # Imported here: the survey step builds on this module's tables and classes.
    from cxloop.demo import surveys

    people = Population.join(parts) if parts else None
    del parts
    step = surveys.SurveyStep(workspace, options, org, people, timeline, writer)
    if options.interactions and people is not None:
        interactions = InteractionMaker(options, org, people, timeline)
        progress.start("interactions", options.interactions)
        for no, start, n in _chunks(options.interactions, options.chunk_size):
            rows, drawn = interactions.chunk(no, start, n, writer, created, workspace.pk)
            writer.write(Interaction, INTERACTION_COLUMNS, rows)
            step.collect(no, drawn)
            progress.advance(n)
    summary.counts["interactions"] = options.interactions
    summary.counts.update(step.finish(progress))
    if people is not None:
        summary.planted = step.planted()
        if options.interactions:
            # The closed loop of the last weeks' detractors, and HQ's problem register.
            from cxloop.demo import cases

            progress.start("closed loop", 1)
            summary.counts.update(cases.build(workspace, timeline.end, options.seed))
            progress.advance(1)
            # Every comment coded, and the first text models from the demo's own labels.
            from cxloop.demo import comments

            progress.start("comments", 1)
            summary.counts.update(comments.build(workspace))
            progress.advance(1)
    summary.first_day = timeline.first_day
    summary.last_day = timeline.last_day
    summary.end = timeline.end
    summary.seconds = time.monotonic() - began
    return summary
