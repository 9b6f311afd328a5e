"""Take the screenshots in this folder again.

    .venv/bin/python docs/screenshots/take.py [--keep]

Builds a throw-away SQLite database in a temporary CXLOOP_VAR_DIR, fills a workspace with
demo-like data through cxloop's own services (a year of interactions, an organisation, a few
thousand customers), serves it with ``cxloop runserver`` on a free loopback port, and drives
Debian's Chromium (``/usr/bin/chromium``, never a downloaded browser) through Playwright to
save full-page PNGs: login.png, home.png, import.png, api_keys.png, and the home page in
Russian and Romanian (home-ru.png, home-ro.png, the language picked by the browser's
Accept-Language). ``--keep`` leaves the temporary folder behind and prints its path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
USERNAME = "maria"
PASSWORD = "demo-password-2718"  # noqa: S105 - a throw-away local database
VIEWPORT = {"width": 1280, "height": 800}
LANGUAGES = ["ru", "ro"]  # besides English


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepare_environment(var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "EMAIL_HOST"):
        env.pop(name, None)
    env.update(
        CXLOOP_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="cxloop.settings",
        DEBUG="true",
        LANGUAGE_CODE="en",
        TIME_ZONE="Europe/Chisinau",
        PYTHONPATH=str(ROOT),
    )
    os.environ.clear()
    os.environ.update(env)
    return env


# --- demo data -----------------------------------------------------------------------------

REGIONS = {"center": "Centre", "north": "North", "south": "South"}
BRANCHES = [
    ("chi-1", "Chișinău Centru", "center", "Chișinău"),
    ("chi-2", "Chișinău Botanica", "center", "Chișinău"),
    ("chi-3", "Chișinău Ciocana", "center", "Chișinău"),
    ("ung", "Ungheni", "center", "Ungheni"),
    ("bal", "Bălți", "north", "Bălți"),
    ("soroca", "Soroca", "north", "Soroca"),
    ("cahul", "Cahul", "south", "Cahul"),
    ("comrat", "Comrat", "south", "Comrat"),
]
PRODUCTS = [
    ("mobile", "Mobile plans", "mobile"),
    ("home-net", "Home internet", "fixed"),
    ("tv", "Digital TV", "fixed"),
    ("devices", "Phones and devices", "retail"),
    ("business", "Business connectivity", "b2b"),
]
CHANNELS = [("store", "Store"), ("call", "Call centre"), ("web", "Web"), ("app", "App"),
            ("field", "Field service")]  # fmt: skip
JOURNEY = [
    ("buy", "Choose and buy", [("store-sale", "Sale in store", "store"),
                                ("web-order", "Online order", "web")]),
    ("install", "Delivery and installation", [("delivery", "Delivery", "field"),
                                               ("install", "Installation visit", "field")]),
    ("use", "Use and pay", [("app-pay", "Payment in the app", "app"),
                            ("billing-call", "Billing question", "call")]),
    ("help", "Get help", [("support-call", "Support call", "call"),
                          ("repair", "Repair", "field")]),
]  # fmt: skip
# type, weight, channel, touchpoints
TYPES = [
    ("call", 34, "call", ["support-call", "billing-call"]),
    ("store_visit", 22, "store", ["store-sale"]),
    ("self_service", 16, "app", ["app-pay"]),
    ("delivery", 9, "field", ["delivery"]),
    ("service_job", 8, "field", ["install", "repair"]),
    ("web_order", 6, "web", ["web-order"]),
    ("dropped_call", 3, "call", ["support-call"]),
    ("late_delivery", 2, "field", ["delivery"]),
]
FIRST_NAMES = ["Ana", "Ion", "Elena", "Andrei", "Natalia", "Sergiu", "Olga", "Victor", "Irina",
               "Dmitri", "Cristina", "Vasile", "Tatiana", "Mihai", "Svetlana", "Alexandru"]  # fmt: skip
LAST_NAMES = ["Rusu", "Ceban", "Popa", "Ivanov", "Munteanu", "Lungu", "Cojocaru", "Petrov",
              "Rotaru", "Ciobanu", "Sidorenko", "Moraru", "Bivol", "Gheorghiu"]  # fmt: skip


def build_demo(rng: random.Random) -> Any:
    from django.contrib.auth import get_user_model

    from cxloop.accounts.models import Role
    from cxloop.accounts.services import create_api_key, create_workspace, set_membership
    from cxloop.core import clock
    from cxloop.customers.services import upsert_customers
    from cxloop.interactions.services import ingest_interactions
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

    ws = create_workspace("nordwind", "Nordwind Telecom", via="cli")
    ws.time_zone = "Europe/Chisinau"
    ws.phone_region = "MD"
    ws.save()
    user = get_user_model().objects.create_user(
        USERNAME, email="maria@example.com", password=PASSWORD, first_name="Maria"
    )
    set_membership(ws, user, Role.ADMIN, via="cli")
    create_api_key(ws, "CRM integration", ["ingest", "read"], via="cli", actor=user)
    create_api_key(ws, "BI export", ["read"], via="cli", actor=user)

    regions = {
        code: Region.objects.create(workspace=ws, code=code, name=name)
        for code, name in REGIONS.items()
    }
    branches = [
        Branch.objects.create(workspace=ws, code=code, name=name, region=regions[r], city=city)
        for code, name, r, city in BRANCHES
    ]
    employees: dict[str, list[str]] = {}
    number = 0
    for branch in branches:
        for t in ("sales", "care"):
            team = Team.objects.create(
                workspace=ws, code=f"{branch.code}-{t}", name=f"{branch.name} {t}", branch=branch
            )
            lead = None
            for _ in range(rng.randint(3, 6)):
                number += 1
                emp = Employee.objects.create(
                    workspace=ws, code=f"E{number:04d}", branch=branch, team=team,
                    name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    supervisor=lead, title="Team lead" if lead is None else "Consultant",
                )  # fmt: skip
                lead = lead or emp
                employees.setdefault(branch.code, []).append(emp.code)
    for code, name, category in PRODUCTS:
        Product.objects.create(workspace=ws, code=code, name=name, category=category)
    channels = {
        code: Channel.objects.create(workspace=ws, code=code, name=name) for code, name in CHANNELS
    }
    for position, (jcode, jname, touchpoints) in enumerate(JOURNEY):
        journey = Journey.objects.get_or_create(
            workspace=ws, code="main", defaults={"name": "Customer lifecycle"}
        )[0]
        stage = Stage.objects.create(
            workspace=ws, code=jcode, name=jname, journey=journey, position=position
        )
        for tcode, tname, channel in touchpoints:
            Touchpoint.objects.create(
                workspace=ws, code=tcode, name=tname, stage=stage, channel=channels[channel]
            )

    customers = []
    for n in range(1, 3201):
        b2b = rng.random() < 0.12
        language = rng.choices(["ro", "ru", "en"], [58, 38, 4])[0]
        item: dict[str, Any] = {
            "external_id": f"C{n:05d}",
            "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "email": f"customer{n}@example.com",
            "language": language,
            "segment": "business" if b2b else rng.choices(["mass", "premium", "youth"], [70, 18, 12])[0],
            "is_b2b": b2b,
        }  # fmt: skip
        if b2b:
            item["account"] = f"A{rng.randint(1, 90):03d}"
        customers.append(item)
    upsert_customers(ws, customers)

    now = clock.now()
    start = now - dt.timedelta(days=364)
    items: list[dict[str, Any]] = []
    weights = [w for _, w, _, _ in TYPES]
    for day in range(365):
        date = start + dt.timedelta(days=day)
        # Growth over the year, quieter weekends, a summer dip, a December peak.
        level = 55 + day * 0.12
        level *= 0.55 if date.weekday() == 6 else 0.8 if date.weekday() == 5 else 1.0
        level *= 0.82 if date.month in (7, 8) else 1.25 if date.month == 12 else 1.0
        for _ in range(max(0, int(rng.gauss(level, level * 0.12)))):
            kind, _, channel, spots = rng.choices(TYPES, weights)[0]
            where = rng.choices(BRANCHES, [30, 18, 14, 6, 12, 6, 8, 6])[0][0]
            at = date.replace(hour=rng.randint(8, 19), minute=rng.randint(0, 59), second=0)
            if at > now:
                continue
            items.append({
                "source": "crm", "external_id": f"I{len(items) + 1:07d}",
                "customer": f"C{rng.randint(1, 3200):05d}", "type": kind,
                "occurred_at": at.isoformat(), "branch": where,
                "employee": rng.choice(employees[where]), "channel": channel,
                "touchpoint": rng.choice(spots),
                "product": rng.choices([p[0] for p in PRODUCTS], [40, 25, 12, 15, 8])[0],
            })  # fmt: skip
    for chunk in range(0, len(items), 5000):
        ingest_interactions(ws, items[chunk : chunk + 5000])
    return ws


IMPORT_CSV = """source,external_id,customer,type,occurred_at,branch,channel
pos,R-10001,C00017,store_visit,2025-03-03 10:15,chi-1,store
pos,R-10002,C00018,store_visit,2025-03-03 10:42,chi-1,store
pos,R-10003,C99999,store_visit,2025-03-03 11:05,chi-2,store
pos,R-10004,C00020,store_visit,03/03/2025 11:30,chi-2,store
pos,R-10005,C00021,store_visit,2025-03-03 12:01,bal,store
pos,R-10006,C00022,store visit,2025-03-03 12:17,bal,store
pos,R-10007,C00023,store_visit,2025-03-03 12:48,cahul,kiosk
pos,R-10008,C00024,store_visit,2025-03-03 13:20,cahul,store
"""


# --- the browser ---------------------------------------------------------------------------


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback server
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def shoot(base: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT, locale="en-GB")  # type: ignore[arg-type]
        page.goto(f"{base}/accounts/login/")
        page.screenshot(path=out / "login.png", full_page=True)

        page.fill("#id_username", USERNAME)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.screenshot(path=out / "home.png", full_page=True)

        page.goto(f"{base}/imports/")
        page.select_option("#id_kind", "interactions")
        page.set_input_files(
            "#id_file",
            {"name": "pos-visits-march.csv", "mimeType": "text/csv",
             "buffer": IMPORT_CSV.encode()},
        )  # fmt: skip
        page.click("form button[type=submit]")
        page.wait_for_selector("#status")
        page.screenshot(path=out / "import.png", full_page=True)

        page.goto(f"{base}/settings/api-keys")
        page.fill("#id_name", "Help desk webhook")
        page.check("input[name=scopes][value=read]")
        page.click("form button[type=submit]:has-text('Create key')")
        page.wait_for_selector("#new-key")
        page.screenshot(path=out / "api_keys.png", full_page=True)

        for language in LANGUAGES:
            context = browser.new_context(viewport=VIEWPORT, locale=language)  # type: ignore[arg-type]
            page = context.new_page()
            page.goto(f"{base}/accounts/login/")
            page.fill("#id_username", USERNAME)
            page.fill("#id_password", PASSWORD)
            page.click("main button[type=submit]")
            page.wait_for_url(f"{base}/")
            page.screenshot(path=out / f"home-{language}.png", full_page=True)
            context.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--out", type=Path, default=HERE, help="where the PNGs go")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")

    var_dir = Path(tempfile.mkdtemp(prefix="cxloop-shots-"))
    env = prepare_environment(var_dir)
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    build_demo(random.Random(args.seed))
    from django.db import connections

    connections.close_all()

    port = free_port()
    log = open(var_dir / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "cxloop", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/healthz")
        args.out.mkdir(parents=True, exist_ok=True)
        shoot(base, args.out)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        if args.keep:
            print(f"kept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)
    for name in ("login", "home", "import", "api_keys", *(f"home-{lang}" for lang in LANGUAGES)):
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
