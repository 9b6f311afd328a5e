"""The respondent's pages: the survey behind an invitation's token, its thank-you page, the
open-tracking pixel, one-click unsubscribe, the survey's public web link and QR code, and the
CX manager's preview (docs/respondent.md).

Why they are built the way they are:

* **A token is a capability.** ``models.new_token`` gives 192 random bits; whoever holds the link
  may answer, change the answers until the invitation expires, or unsubscribe. So these pages
  set no cookie (no session, no CSRF cookie: see ``_no_csrf``), are never kept by shared
  caches, send no ``Referer`` (the token is in the URL) and ask search engines not to index
  them. Unknown tokens are counted per client address and refused for a while after
  ``BAD_TOKENS.limit`` of them, before the database is asked, so guessing gets nowhere.
* **Any phone, no JavaScript.** Plain HTML forms; the score is a set of radio buttons, the
  language switcher a list of links; every page is accessible (WCAG 2.1 AA) with the keyboard
  and a screen reader. Texts of the survey come from its definition in the page's language,
  the few words of the page itself from Django's translations.
* **Fast.** A survey sent to thousands of customers brings them here within minutes: the page
  is one query (the invitation joined with its survey, customer, places and response), writes
  nothing to a session, and its templates receive ready-made values.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import math
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import phonenumbers
import segno
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.http.response import HttpResponseBase
from django.template.loader import get_template
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import get_language_info, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from cxloop.core import clock
from cxloop.core.permissions import workspace_required
from cxloop.organisation.models import Branch, Touchpoint

from . import responses
from . import suppression as suppressions
from .definition import Question, SurveyDefinition, parse_rules
from .models import (
    DeliveryChannel,
    Invitation,
    InvitationStatus,
    Response,
    ResponseSource,
    Survey,
)
from .render import context_of, definition_of, text

# A token as models.new_token makes it (token_urlsafe(24) is 32 characters; the column holds 43).
# Anything else is refused before the database is asked: no lookup for "%00" or a megabyte.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,43}")
PUBLIC_CODE_RE = re.compile(r"[A-Za-z0-9_-]{4,16}")
CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}")  # core.validation.CODE_PATTERN
# The smallest transparent GIF (1x1).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
WHITE = "#ffffff"
MIN_CONTRAST = 4.5  # WCAG 2.1 AA for normal text

# The words under the ends of each scale; the first and last radio button carry them too.
ANCHORS = {
    "nps": (gettext_lazy("not at all likely"), gettext_lazy("extremely likely")),
    "csat": (gettext_lazy("very dissatisfied"), gettext_lazy("very satisfied")),
    "ces": (gettext_lazy("very difficult"), gettext_lazy("very easy")),
}


# --- Rate limits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` events per client address (REMOTE_ADDR) in a fixed window of
    ``window`` seconds, counted in Django's cache.

    With the default local-memory cache each server process counts on its own; a CACHES
    setting naming Redis makes the count shared by every worker. A fixed window (rather than a
    sliding one) costs one cache read per page, which matters at hundreds of pages a second,
    and tells the client exactly when to come back (``Retry-After``).
    """

    name: str
    limit: int
    window: int = 600

    def _slot(self, request: HttpRequest) -> tuple[str, int]:
        now = clock.now().timestamp()
        bucket = int(now // self.window)
        address = re.sub(r"[^0-9A-Fa-f:.]", "_", str(request.META.get("REMOTE_ADDR") or "-"))
        left = math.ceil((bucket + 1) * self.window - now)
        return f"respond:{self.name}:{address[:64]}:{bucket}", max(1, left)

    def retry_after(self, request: HttpRequest) -> int | None:
        """Seconds until this address may try again; None while it is under the limit."""
        key, left = self._slot(request)
        return left if (cache.get(key) or 0) >= self.limit else None

    def count(self, request: HttpRequest) -> None:
        key, _left = self._slot(request)
        if not cache.add(key, 1, timeout=self.window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=self.window)


# Unknown tokens (and unknown public codes) per address: enough for a mistyped link or two,
# far too few to find a token by trying.
BAD_TOKENS = RateLimit("bad-token", 20)
# Answers through the public link per address: a family sharing a Wi-Fi answers freely, a
# script stuffing the ballot does not.
PUBLIC_POSTS = RateLimit("public-post", 30)


# --- Colours ----------------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    """Relative luminance of ``#rrggbb`` (WCAG 2.1)."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two ``#rrggbb`` colours, from 1 to 21."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def accent_colour(brand: str) -> str:
    """The brand colour where text in it on white (and white on it) is readable; else darker.

    A pale brand colour (a yellow, a light blue) keeps its hue but is darkened step by step
    until it reaches 4.5:1 against white; black always gets there.
    """
    colour = brand.lower()
    while contrast(colour, WHITE) < MIN_CONTRAST:
        channels = [int(int(colour[i : i + 2], 16) * 0.9) for i in (1, 3, 5)]
        colour = "#" + "".join(f"{c:02x}" for c in channels)
    return colour


# --- Shared helpers ---------------------------------------------------------------------------


def _private(response: HttpResponseBase) -> HttpResponseBase:
    """Headers every respondent page sends: the URL holds a capability."""
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _no_csrf(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """No CSRF check on the respondent's forms, on purpose.

    CSRF protection needs a cookie, and these pages set none (no consent banner, nothing kept
    about a respondent in their browser). A forged cross-site POST can only act on a token the
    forger already knows, which gives them the page itself anyway; one-click unsubscribe
    (RFC 8058) is by definition a POST without cookies; and ballot stuffing through the public
    link is stopped by its rate limit, which a CSRF token would not change.
    """
    return csrf_exempt(view)


def _render(template: str, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
    """Render without the request: no context processors (no session, user or workspace
    lookups), nothing that could set a cookie. Call inside ``translation.override``."""
    context.setdefault("bidi", translation.get_language_bidi())
    body = get_template(template).render(context)
    response = HttpResponse(body, status=status)
    response["Content-Language"] = context["lang"]
    _private(response)
    return response


def _see_other(url: str) -> HttpResponseBase:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return _private(response)


def _message(
    request: HttpRequest,
    heading: str,
    message: str,
    *,
    status: int,
    frame: Frame | None = None,
    retry_after: int | None = None,
) -> HttpResponse:
    """A friendly page for what went wrong: unknown or closed link, too many tries."""
    context: dict[str, Any] = (
        frame.base(request)
        if frame is not None
        else {"lang": translation.get_language() or settings.LANGUAGE_CODE}
    )
    context.update(heading=heading, message=message, title=heading)
    response = _render("surveys/respond/message.html", context, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _too_many(request: HttpRequest, wait: int) -> HttpResponse:
    return _message(
        request,
        _("Too many attempts"),
        _("Please wait a few minutes, then open the link from your message again."),
        status=429,
        retry_after=wait,
    )


def _not_found(request: HttpRequest) -> HttpResponse:
    return _message(
        request,
        _("We could not find this survey"),
        _(
            "The link may be incomplete. Please open it again from the message you received, "
            "or copy the whole address into your browser."
        ),
        status=404,
    )


def _language_name(code: str) -> str:
    try:
        return str(get_language_info(code)["name_local"])
    except KeyError:
        return code


def _match_language(definition: SurveyDefinition, wanted: str | None) -> str | None:
    """The survey's language that ``wanted`` names (``ro-MD`` → ``ro``), or None."""
    if not wanted:
        return None
    wanted = wanted.strip().lower()[:16]
    for code in (wanted, wanted.split("-")[0]):
        if code in definition.languages:
            return code
    return None


def _accepted_languages(request: HttpRequest) -> list[str]:
    """The browser's languages (Accept-Language), most wanted first."""
    found: list[tuple[float, int, str]] = []
    header = str(request.META.get("HTTP_ACCEPT_LANGUAGE", ""))[:500]
    for position, part in enumerate(header.split(",")):
        code, _sep, params = part.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        if code and code != "*" and weight > 0:
            found.append((-weight, position, code))
    return [code for _w, _p, code in sorted(found)]


@dataclass
class Frame:
    """One survey in one language, with its placeholder values: what every page of it shares."""

    definition: SurveyDefinition
    lang: str
    placeholders: Mapping[str, str]
    is_test: bool = False
    preview: bool = False

    def t(self, texts: dict[str, str]) -> str:
        return text(texts, self.lang, self.definition, self.placeholders)

    def base(self, request: HttpRequest, keep: Iterable[str] = ()) -> dict[str, Any]:
        """Branding, title and the language links (which keep the query parameters ``keep``)."""
        branding = self.definition.branding
        kept = {name: value for name in keep if (value := request.GET.get(name))}
        languages = [
            {
                "code": code,
                "name": _language_name(code),
                "url": "?" + urlencode({**kept, "lang": code}),
                "current": code == self.lang,
            }
            for code in self.definition.languages
        ]
        return {
            "lang": self.lang,
            "company": self.placeholders.get("company", ""),
            "logo_url": branding.logo_url or "",
            "brand_css": reverse("respond_brand_css", args=[branding.colour[1:].lower()]),
            "languages": languages if len(languages) > 1 else [],
            "title": self.t(self.definition.title),
            "is_test": self.is_test,
            "preview": self.preview,
        }


def _score_message(definition: SurveyDefinition) -> str:
    low, high = definition.scale
    return _("Please choose a number from %(low)s to %(high)s.") % {"low": low, "high": high}


def _phone_display(phone: str) -> str:
    """E.164 as people write it (+373 69 123 456); anything unparsable as it is."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _response_of(invitation: Invitation) -> Response | None:
    if invitation.answered_at is None:
        return None  # nothing recorded yet: no query
    try:
        return invitation.response
    except Response.DoesNotExist:
        return None


def _stored(response: Response | None) -> tuple[dict[str, Any], str]:
    if response is None:
        return {}, ""
    return dict(response.answers or {}), response.comment


# --- The form (shared by the token page, the public link and the preview) ---------------------


def _score_context(frame: Frame, selected: int | None, error: str) -> dict[str, Any]:
    definition = frame.definition
    question = definition.score_question
    low, high = definition.scale
    low_label, high_label = ANCHORS[question.type]
    return {
        "legend": frame.t(question.text),
        "low": low,
        "high": high,
        "low_label": str(low_label),
        "high_label": str(high_label),
        "count": high - low + 1,
        "options": [
            {"value": n, "id": f"score-{n}", "checked": n == selected} for n in range(low, high + 1)
        ],
        "error": error,
    }


def _field(
    frame: Frame,
    question: Question,
    value: Any,
    *,
    comment: str | None,
    phone: str,
    error: str,
) -> dict[str, Any]:
    """What the template needs to draw one follow-up question, its answer filled in."""
    field: dict[str, Any] = {
        "code": question.code,
        "type": question.type,
        "name": f"q_{question.code}",
        "id": f"q-{question.code}",
        "text": frame.t(question.text),
        "required": question.required,
        "error": error,
    }
    if question.type in ("single", "multiple"):
        chosen = set(value) if isinstance(value, list) else {value}
        field["options"] = [
            {
                "value": o.code,
                "id": f"q-{question.code}-{o.code}",
                "text": frame.t(o.text),
                "checked": o.code in chosen,
            }
            for o in question.options
        ]
        field["anchor"] = field["options"][0]["id"]
    elif question.type == "text":
        field["value"] = comment if comment is not None else (value or "")
    elif question.type == "contact":
        may = value.get("may_contact") if isinstance(value, dict) else None
        typed = value.get("phone") if isinstance(value, dict) else None
        field.update(yes=may is True, no=may is False, phone=typed or phone)
        field["anchor"] = f"q-{question.code}-yes"
    elif question.type == "competitors":
        uses = value.get("uses", []) if isinstance(value, dict) else []
        scores = value.get("scores", {}) if isinstance(value, dict) else {}
        field["competitors"] = [
            {
                "name": name,
                "id": f"q-{question.code}-{i}",
                "field": f"q_{question.code}_{i}",
                "used": name in uses,
                "scores": [{"value": n, "selected": scores.get(name) == n} for n in range(11)],
            }
            for i, name in enumerate(question.competitors)
        ]
        field["anchor"] = f"q-{question.code}-0"
    field.setdefault("anchor", field["id"])
    return field


def _form_context(
    frame: Frame,
    *,
    score: int | None,
    selected: int | None,
    details: bool,
    values: dict[str, Any],
    comment: str,
    phone: str,
    errors: dict[str, str],
) -> dict[str, Any]:
    """The score question and, on the second step (``details``), the follow-ups for ``score``."""
    definition = frame.definition
    comment_q = responses.comment_question(definition)
    fields = []
    if details:
        for question in definition.questions[1:]:
            if question.shown_for(score):
                fields.append(
                    _field(
                        frame,
                        question,
                        values.get(question.code),
                        comment=comment if comment_q and question.code == comment_q.code else None,
                        phone=phone,
                        error=errors.get(question.code, ""),
                    )
                )
    scale = _score_context(frame, selected, errors.get("score", ""))
    summary = []
    if scale["error"]:
        summary.append({"anchor": scale["options"][0]["id"], "message": scale["error"]})
    summary += [{"anchor": f["anchor"], "message": f["error"]} for f in fields if f["error"]]
    return {
        "step": "details" if details else "score",
        "intro": "" if details else frame.t(definition.intro) if definition.intro else "",
        "score": scale,
        "fields": fields,
        "errors": summary,
    }


def _read_answers(
    definition: SurveyDefinition, post: QueryDict, asked: list[Question]
) -> tuple[str | None, dict[str, Any], dict[str, str]]:
    """The posted answers to the questions on the form, as typed: (comment, answers, errors).

    Answers keep the shapes of ``responses`` (a list of codes, ``{"may_contact", "phone"}``…);
    ``record`` checks them. Here only what the form itself can tell: a required question left
    empty, a call-back without a number.
    """
    comment_q = responses.comment_question(definition)
    comment: str | None = None
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for question in asked:
        name = f"q_{question.code}"
        value: Any = None
        if question.type == "single":
            value = post.get(name) or None
        elif question.type == "multiple":
            value = post.getlist(name)
        elif question.type == "text":
            value = post.get(name, "")
        elif question.type == "contact":
            choice = post.get(name)
            phone = post.get(f"{name}_phone", "").strip()
            if choice in ("yes", "no"):
                value = {"may_contact": choice == "yes", "phone": phone}
                if choice == "yes" and not phone:
                    errors[question.code] = _("Please give the number we may call.")
        elif question.type == "competitors":
            scores: dict[str, Any] = {}
            for i, competitor in enumerate(question.competitors):
                raw = post.get(f"{name}_{i}", "").strip()
                if raw:
                    scores[competitor] = int(raw) if raw.isdecimal() and len(raw) < 4 else raw
            value = {"uses": post.getlist(name), "scores": scores}
        empty = value in (None, "", []) or (
            question.type == "competitors" and not value["uses"] and not value["scores"]
        )
        if question.required and empty and question.code not in errors:
            errors[question.code] = _("Please answer this question.")
        if comment_q is not None and question.code == comment_q.code:
            comment = value
        else:
            answers[question.code] = value
    return comment, answers, errors


def _friendly_error(definition: SurveyDefinition, key: str) -> tuple[str, str]:
    """``record``'s error key as (question code, a message for the respondent)."""
    comment_q = responses.comment_question(definition)
    if key == "score":
        return "score", _score_message(definition)
    code = comment_q.code if key == "comment" and comment_q else key.removeprefix("answers.")
    question = definition.question(code)
    kind = question.type if question else ""
    if kind == "contact":
        message = _("Please check the phone number; write it with the country code, like +373…")
    elif kind == "text":
        message = _("Please keep your answer under %(n)s characters.") % {"n": responses.MAX_TEXT}
    elif kind == "competitors":
        message = _("Please rate each of them from 0 to 10.")
    else:
        message = _("Please choose one of the options.")
    return code, message


def _for_record(question: Question, value: Any) -> Any:
    if question.type == "contact" and isinstance(value, dict) and not value["may_contact"]:
        return {"may_contact": False, "phone": ""}
    return value


def _save(
    invitation: Invitation,
    frame: Frame,
    *,
    score: int | None,
    comment: str | None,
    answers: dict[str, Any],
    errors: dict[str, str],
) -> Response | None:
    """Record what is valid; whatever ``record`` refuses goes into ``errors`` and the rest is
    kept all the same (a wrong phone number must not cost the customer their comment)."""
    definition = frame.definition
    comment_q = responses.comment_question(definition)
    kwargs: dict[str, Any] = {}
    if score is not None:
        kwargs["score"] = score
    if comment is not None and comment_q is not None and comment_q.code not in errors:
        kwargs["comment"] = comment
    clean = {}
    for code, value in answers.items():
        question = definition.question(code)
        if question is not None and value is not None and code not in errors:
            clean[code] = _for_record(question, value)
    for _attempt in range(2):
        try:
            return responses.record(
                invitation, answers=clean, language=frame.lang, source=ResponseSource.WEB, **kwargs
            )
        except responses.AnswerError as exc:
            for key in exc.errors:
                code, message = _friendly_error(definition, key)
                errors[code] = message
                clean.pop(code, None)
                if comment_q is not None and code == comment_q.code:
                    kwargs.pop("comment", None)
            if "score" in errors:
                return None
    return None


# --- The survey behind a token ----------------------------------------------------------------


def _invitation(request: HttpRequest, token: str) -> Invitation | HttpResponse:
    """The invitation of ``token`` (one query), or the page to show instead."""
    wait = BAD_TOKENS.retry_after(request)
    if wait is not None:
        # Refused before the lookup, so a blocked address learns nothing about any token.
        return _too_many(request, wait)
    invitation = None
    if TOKEN_RE.fullmatch(token):
        # Four joins, not eight: the planner's and the ORM's work per page grows with each.
        # The branch is in nearly every survey's texts; other names load when a text uses
        # them, and the response only once there is one.
        found = list(
            Invitation.objects.select_related("survey", "workspace", "customer", "branch").filter(
                token=token
            )[:1]
        )
        invitation = found[0] if found else None
    if invitation is None:
        BAD_TOKENS.count(request)
        return _not_found(request)
    return invitation


def _frame_of(request: HttpRequest, invitation: Invitation) -> Frame:
    """The invitation's survey in the language asked for (``?lang=``, which is then kept as
    the invitation's language) or the invitation's own."""
    definition = definition_of(invitation.survey)
    chosen = _match_language(definition, request.GET.get("lang"))
    if chosen is not None and chosen != invitation.language and request.method != "HEAD":
        Invitation.objects.filter(pk=invitation.pk).update(language=chosen)
        Response.objects.filter(invitation=invitation).update(language=chosen)
        invitation.language = chosen
    lang = chosen or definition.pick_language(invitation.language)
    return Frame(definition, lang, context_of(invitation), is_test=invitation.is_test)


def _closed(request: HttpRequest, invitation: Invitation, frame: Frame) -> HttpResponse | None:
    if invitation.status in (InvitationStatus.CANCELLED, InvitationStatus.FAILED):
        return _message(
            request,
            _("This survey is not available"),
            _("This link is no longer in use. Thank you for your interest."),
            status=410,
            frame=frame,
        )
    if invitation.expires_at <= clock.now():
        return _message(
            request,
            _("This survey has closed"),
            _("The time to answer has passed. If you answered before, thank you: it was kept."),
            status=410,
            frame=frame,
        )
    return None


def _until(invitation: Invitation) -> str:
    """The last day answers may change, in the customer's (else the workspace's) time zone."""
    name = (invitation.customer.time_zone if invitation.customer else "") or (
        invitation.workspace.time_zone
    )
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        zone = zoneinfo.ZoneInfo("UTC")
    return formats.date_format(timezone.localtime(invitation.expires_at, zone), "DATE_FORMAT")


def _token_extras(invitation: Invitation) -> dict[str, Any]:
    return {
        "until": _until(invitation),
        "unsubscribe_url": (
            reverse("respond_unsubscribe", args=[invitation.token])
            if invitation.customer_id
            else ""
        ),
    }


def _survey_page(
    request: HttpRequest,
    invitation: Invitation,
    frame: Frame,
    *,
    score: int | None,
    selected: int | None,
    details: bool,
    values: dict[str, Any],
    comment: str,
    errors: dict[str, str],
    status: int = 200,
) -> HttpResponse:
    phone = invitation.customer.phone if invitation.customer else ""
    context = frame.base(request)
    context.update(
        _form_context(
            frame,
            score=score,
            selected=selected,
            details=details,
            values=values,
            comment=comment,
            phone=_phone_display(phone) if phone else "",
            errors=errors,
        )
    )
    context.update(_token_extras(invitation))
    context.update(
        form_method="post",
        form_action=reverse("respond", args=[invitation.token]),
        hidden=[],
        saved=details and not errors,
        submit=_("Send") if details else _("Next"),
    )
    return _render("surveys/respond/survey.html", context, status=status)


def _mark_clicked(invitation: Invitation) -> None:
    """The funnel: the customer opened the page (so the e-mail too, images blocked or not)."""
    if invitation.clicked_at is not None:
        return
    now = clock.now()
    changes = {"clicked_at": now}
    if invitation.opened_at is None:
        changes["opened_at"] = now
    Invitation.objects.filter(pk=invitation.pk, clicked_at__isnull=True).update(**changes)


def _get(request: HttpRequest, invitation: Invitation, frame: Frame) -> HttpResponseBase:
    response = _response_of(invitation)
    raw_score = request.GET.get("score")
    score = response.score if response else None
    values, comment = _stored(response)
    if raw_score is not None and request.method == "GET":
        # The one-click score from the e-mail: kept at once, then the follow-ups.
        try:
            clicked = responses.check_score(frame.definition, raw_score)
        except ValueError:
            return _survey_page(
                request,
                invitation,
                frame,
                score=score,
                selected=score,
                details=score is not None,
                values=values,
                comment=comment,
                errors={"score": _score_message(frame.definition)},
                status=400,
            )
        responses.record(
            invitation, score=clicked, language=frame.lang, source=ResponseSource.EMAIL
        )
        return _see_other(reverse("respond", args=[invitation.token]))
    if request.method == "GET":
        _mark_clicked(invitation)
    return _survey_page(
        request,
        invitation,
        frame,
        score=score,
        selected=score,
        details=score is not None,
        values=values,
        comment=comment,
        errors={},
    )


def _post(request: HttpRequest, invitation: Invitation, frame: Frame) -> HttpResponseBase:
    definition = frame.definition
    existing = _response_of(invitation)
    before = existing.score if existing else None
    errors: dict[str, str] = {}
    raw_score = (request.POST.get("score") or "").strip()
    given: int | None = None
    if raw_score:
        try:
            given = responses.check_score(definition, raw_score)
        except ValueError:
            errors["score"] = _score_message(definition)
    elif before is None:
        errors["score"] = _score_message(definition)
    score = given if given is not None else before
    posted = set(request.POST.getlist("asked"))
    asked = [q for q in definition.questions[1:] if q.code in posted and q.shown_for(score)]
    comment, answers, form_errors = _read_answers(definition, request.POST, asked)
    errors.update(form_errors)
    if "score" not in errors:
        _save(invitation, frame, score=given, comment=comment, answers=answers, errors=errors)
    if errors:
        stored, stored_comment = _stored(existing)
        return _survey_page(
            request,
            invitation,
            frame,
            score=score,
            selected=score,
            details=score is not None and (bool(asked) or before is not None),
            values={**stored, **answers},
            comment=comment if comment is not None else stored_comment,
            errors=errors,
            status=422,
        )
    # Follow-ups the new score calls for that were not on this form (the first step had the
    # score only; a changed score may add the call-back question): show them, else thank.
    asked_codes = {q.code for q in asked}
    pending = [
        q for q in definition.questions[1:] if q.shown_for(score) and q.code not in asked_codes
    ]
    name = "respond" if pending else "respond_thanks"
    return _see_other(reverse(name, args=[invitation.token]))


def _open_survey(
    view: Callable[[HttpRequest, Invitation, Frame], HttpResponseBase],
) -> Callable[[HttpRequest, str], HttpResponseBase]:
    """The token's invitation, in its language and still open — or the page that says why not."""

    @functools.wraps(view)
    def inner(request: HttpRequest, token: str) -> HttpResponseBase:
        found = _invitation(request, token)
        if isinstance(found, HttpResponse):
            return found
        frame = _frame_of(request, found)
        with translation.override(frame.lang):
            closed = _closed(request, found, frame)
            if closed is not None:
                return closed
            return view(request, found, frame)

    return inner


@_no_csrf
@require_http_methods(["GET", "HEAD", "POST"])
@_open_survey
def respond(request: HttpRequest, found: Invitation, frame: Frame) -> HttpResponseBase:
    """``/s/<token>``: the score, then the follow-up questions; ``?score=N`` records at once."""
    if request.method == "POST":
        return _post(request, found, frame)
    return _get(request, found, frame)


def _thanks_context(frame: Frame) -> dict[str, Any]:
    definition = frame.definition
    review = definition.review
    return {
        "thank_you": frame.t(definition.thank_you),
        # To every respondent whatever their score: asking only the happy ones for a public
        # review breaks the review sites' rules (and misleads readers).
        "review": {"text": frame.t(review.text), "url": review.url} if review else None,
    }


@require_http_methods(["GET", "HEAD"])
@_open_survey
def thanks(request: HttpRequest, found: Invitation, frame: Frame) -> HttpResponseBase:
    """``/s/<token>/thanks``: thank you, the review invitation, a way back to change answers."""
    response = _response_of(found)
    if response is None or response.score is None:
        return _see_other(reverse("respond", args=[found.token]))
    context = frame.base(request)
    context.update(_thanks_context(frame))
    context.update(_token_extras(found))
    context["change_url"] = reverse("respond", args=[found.token])
    return _render("surveys/respond/thanks.html", context)


@require_http_methods(["GET", "HEAD"])
def open_pixel(request: HttpRequest, token: str) -> HttpResponseBase:
    """``/s/<token>/o.gif``: marks the e-mail opened; the same GIF whatever the token, so the
    pixel tells nobody whether a token exists (unknown ones still count toward the limit)."""
    if BAD_TOKENS.retry_after(request) is None:
        known = False
        if TOKEN_RE.fullmatch(token):
            opened = Invitation.objects.filter(token=token, opened_at__isnull=True)
            known = bool(opened.update(opened_at=clock.now())) or (
                Invitation.objects.filter(token=token).exists()
            )
        if not known:
            BAD_TOKENS.count(request)
    response = HttpResponse(PIXEL, content_type="image/gif")
    _private(response)
    return response


@_no_csrf
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponseBase:
    """``/s/<token>/unsubscribe``: GET asks, POST unsubscribes — from the page's button or as
    RFC 8058 one-click (``List-Unsubscribe=One-Click``, no cookies, no CSRF token).

    Works after the invitation expired or was cancelled: an old e-mail's unsubscribe link
    must keep working. GET changes nothing, so link scanners cannot unsubscribe anybody.
    """
    found = _invitation(request, token)
    if isinstance(found, HttpResponse):
        return found
    frame = _frame_of(request, found)
    with translation.override(frame.lang):
        done = request.method == "POST"
        if done and found.customer is not None:
            channel = (
                found.delivery_channel
                if found.delivery_channel in (DeliveryChannel.EMAIL, DeliveryChannel.SMS)
                else DeliveryChannel.EMAIL
            )
            suppressions.unsubscribe(found.customer, via="web", source="link", channel=channel)
        context = frame.base(request)
        context.update(done=done, form_action=reverse("respond_unsubscribe", args=[found.token]))
        context["title"] = _("Unsubscribe")
        return _render("surveys/respond/unsubscribe.html", context)


# --- The public web link and QR code ----------------------------------------------------------


def _place(survey: Survey, query: QueryDict) -> tuple[Branch | None, Touchpoint | None]:
    """The branch and touchpoint that ``?branch=CODE&touchpoint=CODE`` name; unknown ones
    (or another workspace's) are ignored: a mistyped QR code must still collect answers."""
    branch = touchpoint = None
    code = query.get("branch", "")
    if CODE_RE.fullmatch(code):
        branch = Branch.objects.filter(workspace_id=survey.workspace_id, code=code).first()
    code = query.get("touchpoint", "")
    if CODE_RE.fullmatch(code):
        touchpoint = (
            Touchpoint.objects.select_related("channel")
            .filter(workspace_id=survey.workspace_id, code=code)
            .first()
        )
    return branch, touchpoint


def _public_survey(request: HttpRequest, public_code: str) -> Survey | HttpResponse:
    wait = BAD_TOKENS.retry_after(request)
    if wait is not None:
        return _too_many(request, wait)
    survey = None
    if PUBLIC_CODE_RE.fullmatch(public_code):
        survey = Survey.objects.select_related("workspace").filter(public_code=public_code).first()
    if survey is None:
        BAD_TOKENS.count(request)
        return _not_found(request)
    return survey


@_no_csrf
@require_http_methods(["GET", "HEAD", "POST"])
def public(request: HttpRequest, public_code: str) -> HttpResponseBase:
    """``/s/p/<code>``: the survey for anybody (receipts, counters, a web site).

    The score makes an invitation of its own (channel "link", no customer) and the answer goes
    on at ``/s/<token>`` like any other, so follow-ups and changes work the same way.
    """
    found = _public_survey(request, public_code)
    if isinstance(found, HttpResponse):
        return found
    survey = found
    definition = definition_of(survey)
    lang = _match_language(definition, request.GET.get("lang")) or definition.pick_language(
        *_accepted_languages(request)
    )
    branch, touchpoint = _place(survey, request.GET)
    draft = Invitation(
        survey=survey, workspace=survey.workspace, branch=branch, touchpoint=touchpoint
    )
    frame = Frame(definition, lang, context_of(draft))
    with translation.override(lang):
        if not survey.is_active:
            return _message(
                request,
                _("This survey has closed"),
                _("It is not taking answers at the moment. Thank you for your interest."),
                status=410,
                frame=frame,
            )
        errors: dict[str, str] = {}
        if request.method == "POST":
            wait = PUBLIC_POSTS.retry_after(request)
            if wait is not None:
                return _too_many(request, wait)
            PUBLIC_POSTS.count(request)
            try:
                score = responses.check_score(definition, request.POST.get("score", ""))
            except ValueError:
                errors["score"] = _score_message(definition)
            else:
                invitation = _public_invitation(survey, lang, branch, touchpoint, score)
                return _see_other(reverse("respond", args=[invitation.token]))
        context = frame.base(request, keep=("branch", "touchpoint"))
        context.update(
            _form_context(
                frame,
                score=None,
                selected=None,
                details=False,
                values={},
                comment="",
                phone="",
                errors=errors,
            )
        )
        context.update(
            form_method="post",
            form_action=request.get_full_path(),
            hidden=[],
            saved=False,
            submit=_("Next"),
        )
        return _render("surveys/respond/survey.html", context, status=422 if errors else 200)


def _public_invitation(
    survey: Survey, lang: str, branch: Branch | None, touchpoint: Touchpoint | None, score: int
) -> Invitation:
    now = clock.now()
    expiry = parse_rules(survey.rules).expiry_days
    with transaction.atomic():
        invitation = Invitation.objects.create(
            workspace=survey.workspace,
            survey=survey,
            customer=None,
            delivery_channel=DeliveryChannel.LINK,
            language=lang,
            status=InvitationStatus.SENT,
            sent_at=now,
            scheduled_for=now,
            expires_at=now + dt.timedelta(days=expiry),
            clicked_at=now,
            branch=branch,
            touchpoint=touchpoint,
            channel=touchpoint.channel if touchpoint is not None else None,
        )
        responses.record(
            invitation, score=score, language=lang, source=ResponseSource.LINK, now=now
        )
    return invitation


def public_url(survey: Survey, query: dict[str, str] | None = None) -> str:
    """The absolute public link of ``survey``, for printing and QR codes."""
    url = f"{settings.SITE_URL}{reverse('respond_public', args=[survey.public_code])}"
    return f"{url}?{urlencode(query)}" if query else url


@require_http_methods(["GET", "HEAD"])
def public_qr(request: HttpRequest, public_code: str) -> HttpResponseBase:
    """``/s/p/<code>/qr.svg``: the public link as a QR code (SVG, prints sharp at any size),
    keeping ``branch``, ``touchpoint`` and ``lang`` so each counter can have its own."""
    found = _public_survey(request, public_code)
    if isinstance(found, HttpResponse):
        return found
    query = {
        name: value
        for name in ("branch", "touchpoint", "lang")
        if CODE_RE.fullmatch(value := request.GET.get(name, ""))
    }
    buffer = io.BytesIO()
    segno.make(public_url(found, query), error="m").save(buffer, kind="svg", scale=8, border=2)
    response = HttpResponse(buffer.getvalue(), content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_http_methods(["GET", "HEAD"])
def brand_css(request: HttpRequest, colour: str) -> HttpResponseBase:
    """``/s/brand/<rrggbb>.css``: the survey's colours as CSS variables, so the pages need no
    inline style (a strict Content-Security-Policy stays possible) and browsers cache it for
    good — the colour is the URL."""
    brand = f"#{colour.lower()}"
    css = f":root{{--brand:{brand};--accent:{accent_colour(brand)}}}\n"
    response = HttpResponse(css, content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


# --- The CX manager's preview -----------------------------------------------------------------


@workspace_required()
@require_http_methods(["GET", "HEAD"])
def preview(request: HttpRequest, survey_code: str) -> HttpResponseBase:
    """``/s/preview/<code>``: the respondent's page in any language, with a sample score and
    sample names, for members of the survey's workspace. Its forms only move between preview
    pages (GET): nothing is recorded."""
    survey = Survey.get_for_workspace(getattr(request, "workspace", None), code=survey_code)
    definition = definition_of(survey)
    lang = _match_language(definition, request.GET.get("lang")) or definition.default_language
    try:
        score: int | None = responses.check_score(definition, request.GET.get("score", ""))
    except ValueError:
        score = None
    with translation.override(lang):
        placeholders = {
            "company": definition.branding.company_name or survey.workspace.name,
            "branch": _("Main street"),
            "product": _("Sample product"),
            "touchpoint": _("Store visit"),
            "employee": _("Anna"),
        }
        frame = Frame(definition, lang, placeholders, preview=True)
        url = reverse("respond_preview", args=[survey.code])
        context = frame.base(request, keep=("score", "page"))
        context.update(
            preview_links={
                "public": public_url(survey),
                "qr": reverse("respond_public_qr", args=[survey.public_code]),
                "score": f"{url}?{urlencode({'lang': lang})}",
            },
            until="",
            unsubscribe_url="",
        )
        if request.GET.get("page") == "thanks":
            context.update(_thanks_context(frame), change_url=context["preview_links"]["score"])
            return _render("surveys/respond/thanks.html", context)
        context.update(
            _form_context(
                frame,
                score=score,
                selected=score,
                details=score is not None,
                values={},
                comment="",
                phone=_phone_display("+37369123456"),
                errors={},
            )
        )
        hidden = [("lang", lang)]
        if score is not None:
            hidden.append(("page", "thanks"))
        context.update(
            form_method="get",
            form_action=url,
            # The score step's radios are named "score": choosing one and pressing Next shows
            # the follow-ups for it; the last step shows the thank-you page.
            hidden=hidden,
            saved=False,
            submit=_("Send") if score is not None else _("Next"),
        )
        return _render("surveys/respond/survey.html", context)
