"""The web UI in Russian, Romanian and English: chosen by the browser, a cookie or the switcher.

The catalogs are checked too: every entry of ``cxloop/locale/*/LC_MESSAGES/django.po`` is
translated and not fuzzy, keeps its placeholders, and the compiled ``.mo`` next to it gives
exactly the ``.po``'s translation (so a ``.po`` edited without ``compilemessages`` fails here).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from cxloop.accounts.models import Role, Workspace

PASSWORD = "correct horse battery staple"  # the password of cxloop/conftest.py's make_user
LOCALE = Path(settings.LOCALE_PATHS[0])
TRANSLATED = ("ru", "ro")
# A number for each plural form: Russian 1 / 2 / 5 (один, два, пять), Romanian 1 / 2 / 20.
PLURAL_SAMPLES = {"ru": (1, 2, 5), "ro": (1, 2, 20)}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


# --- a small .po reader (polib is not a dependency) ----------------------------------------


@dataclass
class Entry:
    line: int
    flags: set[str] = field(default_factory=set)
    msgctxt: str | None = None
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # 0 for a singular entry

    def __str__(self) -> str:
        return f"line {self.line}: {self.msgid!r}"


def read_po(path: Path) -> list[Entry]:
    entries: list[Entry] = []
    entry: Entry | None = None
    target: tuple[str, int] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            entry, target = None, None
            continue
        if entry is None:
            entry = Entry(line=number)
            entries.append(entry)
        if line.startswith("#~"):
            entry.flags.add("obsolete")
        elif line.startswith("#,"):
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        else:
            match = re.fullmatch(r'(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])? (".*")', line)
            if match:
                target = (match[1], int(match[2] or 0))
                text = match[3]
            elif line.startswith('"') and target is not None:
                text = line
            else:
                raise AssertionError(f"{path}:{number}: cannot read {raw!r}")
            value: str = ast.literal_eval(text)  # PO strings are quoted as C (and Python) quote
            kind, index = target
            if kind == "msgstr":
                entry.msgstr[index] = entry.msgstr.get(index, "") + value
            else:
                setattr(entry, kind, (getattr(entry, kind) or "") + value)
    return entries


def catalog(language: str) -> tuple[Entry, list[Entry]]:
    """The header and the messages of a language's django.po."""
    entries = read_po(LOCALE / language / "LC_MESSAGES" / "django.po")
    header = [e for e in entries if e.msgid == "" and e.msgctxt is None]
    assert len(header) == 1, "the .po file has no header"
    return header[0], [e for e in entries if e is not header[0]]


# --- the catalogs --------------------------------------------------------------------------


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_entry_is_translated_and_none_is_fuzzy(language: str) -> None:
    header, entries = catalog(language)
    assert "fuzzy" not in header.flags
    assert "nplurals=3;" in header.msgstr[0]
    assert f"Language: {language}\n" in header.msgstr[0]
    assert len(entries) > 100
    problems = []
    for entry in entries:
        forms = 3 if entry.msgid_plural is not None else 1
        if entry.flags & {"fuzzy", "obsolete"}:
            problems.append(
                f"{entry} is {' and '.join(sorted(entry.flags & {'fuzzy', 'obsolete'}))}"
            )
        elif sorted(entry.msgstr) != list(range(forms)) or not all(entry.msgstr.values()):
            problems.append(f"{entry} is not translated ({forms} form(s) expected)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_placeholders_and_markup(language: str) -> None:
    _, entries = catalog(language)
    problems = []
    for entry in entries:
        wanted = set(PLACEHOLDER.findall(entry.msgid + (entry.msgid_plural or "")))
        for index, text in entry.msgstr.items():
            found = set(PLACEHOLDER.findall(text))
            # A form used for exactly one number (Romanian "într-o regiune") may leave it out.
            if found - wanted or (found != wanted and not (entry.msgid_plural and index == 0)):
                problems.append(
                    f"{entry}: msgstr[{index}] has {sorted(found)}, not {sorted(wanted)}"
                )
            if re.findall(r"</?\w+>", text) != re.findall(r"</?\w+>", entry.msgid):
                problems.append(f"{entry}: msgstr[{index}] changes the HTML tags")
    assert not problems, "\n".join(problems)


def test_romanian_uses_comma_below_letters() -> None:
    _, entries = catalog("ro")
    cedilla = [str(e) for e in entries if re.search("[şţŞŢ]", "".join(e.msgstr.values()))]
    assert not cedilla, f"ş/ţ (cedilla) instead of ș/ț (comma below): {cedilla}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_compiled_catalog_matches_the_po_file(language: str) -> None:
    """What Django serves (from the .mo) is the .po's translation: the .mo was compiled since."""
    assert (LOCALE / language / "LC_MESSAGES" / "django.mo").is_file()
    _, entries = catalog(language)
    stale = []
    with translation.override(language):
        for entry in entries:
            if entry.msgid_plural is None:
                if entry.msgctxt is not None:
                    served = translation.pgettext(entry.msgctxt, entry.msgid)
                else:
                    served = translation.gettext(entry.msgid)
                if served != entry.msgstr[0]:
                    stale.append(f"{entry}: served {served!r}, the .po says {entry.msgstr[0]!r}")
                continue
            for index, n in enumerate(PLURAL_SAMPLES[language]):
                if entry.msgctxt is not None:
                    served = translation.npgettext(
                        entry.msgctxt, entry.msgid, entry.msgid_plural, n
                    )
                else:
                    served = translation.ngettext(entry.msgid, entry.msgid_plural, n)
                if served != entry.msgstr[index]:
                    stale.append(f"{entry} (n={n}): served {served!r}, the .po says "
                                 f"{entry.msgstr[index]!r}")  # fmt: skip
    assert not stale, "run `cxloop compilemessages`:\n" + "\n".join(stale)


# --- the pages -----------------------------------------------------------------------------


def test_login_page_follows_the_browsers_language() -> None:
    page = Client().get("/accounts/login/", headers={"accept-language": "ru-RU,ru;q=0.9"})
    html = page.content.decode()
    assert page.status_code == 200
    assert '<html lang="ru">' in html
    assert "Имя пользователя" in html and "Пароль" in html and "Забыли пароль?" in html
    assert "Username" not in html


def test_login_page_follows_the_language_cookie() -> None:
    client = Client(headers={"accept-language": "ru"})
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ro"  # the cookie wins over the header
    html = client.get("/accounts/login/").content.decode()
    assert '<html lang="ro">' in html
    assert "Nume de utilizator" in html and "Parolă" in html and "Ați uitat parola?" in html


def test_login_page_is_english_by_default_and_offers_the_languages() -> None:
    html = Client().get("/accounts/login/").content.decode()
    assert '<html lang="en">' in html
    assert "Username" in html and "Forgotten your password?" in html
    form = re.search(r'<form class="language" method="post" action="/i18n/setlang/">.*?</form>',
                     html, re.S)  # fmt: skip
    assert form, "the login page has no language switcher"
    options = re.findall(r'<option value="(\w+)"[^>]*>([^<]+)</option>', form[0])
    assert options == [("en", "English"), ("ru", "Русский"), ("ro", "Română")]
    assert 'name="language"' in form[0] and 'name="csrfmiddlewaretoken"' in form[0]
    assert 'name="next" value="/accounts/login/"' in form[0]
    assert re.search(r"<noscript><button>Apply</button></noscript>", form[0])


def test_switching_language_changes_the_home_page(
    workspace: Workspace, make_user: Callable[..., Any], settings: Any
) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = make_user(workspace, Role.ADMIN)
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": user.get_username(), "password": PASSWORD}
    )
    assert response.status_code == 302

    html = client.get("/").content.decode()
    assert '<html lang="en">' in html and ">Overview<" in html
    assert 'action="/i18n/setlang/"' in html  # the switcher is in the header

    # What the form sends when a language is picked (or its <noscript> button pressed).
    response = client.post("/i18n/setlang/", {"language": "ru", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    html = client.get("/").content.decode()
    assert '<html lang="ru">' in html
    assert ">Обзор<" in html and "Журнал аудита" in html and "Выйти" in html
    assert "Администратор" in html  # the role, from the model's choices
    assert "в 0 регионах" in html  # a plural form
    assert '<option value="ru" lang="ru" selected>Русский</option>' in html

    client.post("/i18n/setlang/", {"language": "ro", "next": "/"})
    html = client.get("/").content.decode()
    assert '<html lang="ro">' in html
    assert ">Prezentare generală<" in html and "Jurnal de audit" in html
    assert "Deconectare" in html and "în 0 regiuni" in html
