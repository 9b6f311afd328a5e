"""What an integrator sends and receives for responses, surveys, unsubscribes and decisions.

The response item uses the same field names for import (``POST /responses/batch``) and for
reading (``GET /responses``), so an export from one cxloop can be imported into another and
other tools can check the contract field by field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cxloop.core import validation as v

from .definition import Language
from .responses import MAX_TEXT

# The references an imported response may carry when it has no interaction.
CODES = ("branch", "employee", "product", "channel", "touchpoint")


class ResponseIn(BaseModel):
    """One answer collected elsewhere (another tool, a kiosk, an IVR). Idempotent on
    ``external_id``: sending it again changes nothing."""

    model_config = ConfigDict(extra="forbid")

    external_id: v.Code = Field(max_length=128, examples=["KIOSK-2026-000123"])
    survey: v.Slug = Field(
        max_length=64, description="The survey's code.", examples=["after-visit"]
    )
    customer: v.Code = Field(max_length=128, description="The customer's external_id.")
    interaction: v.OptionalCode = Field(
        default=None,
        description='The interaction answered about, as "source:external_id" (or a bare '
        "external_id when one source alone has it). Its branch, employee, product, channel and "
        "touchpoint are the response's; codes given as well must be the same.",
        examples=["crm:V-778812"],
    )
    # Any JSON here: the scale depends on the survey (NPS 0-10, CSAT 1-5, CES 1-7), so the score
    # is checked against it by the import, with a message that names the scale.
    score: Any = Field(
        description="The answer to the survey's first question, on its scale: NPS 0-10, "
        "CSAT 1-5, CES 1-7.",
        json_schema_extra={"type": "integer"},
        examples=[9],
    )
    comment: str | None = Field(default=None, max_length=MAX_TEXT)
    answers: dict[str, Any] | None = Field(
        default=None,
        description="The other questions by code: a single choice as an option code, a multiple "
        'choice as a list of codes, a text as a string, the call-back question as {"may_contact": '
        'bool, "phone": "+…"}.',
        examples=[{"reasons": ["staff", "waiting"]}],
    )
    language: Language | Literal[""] | None = Field(
        default=None, description="One of the survey's languages; its default when left out."
    )
    answered_at: dt.datetime = Field(
        description="ISO 8601 with an offset (Z or +02:00); at most 24 h in the future."
    )
    branch: v.OptionalCode = Field(default=None, description="Branch code (no interaction).")
    employee: v.OptionalCode = Field(default=None, description="Employee code (no interaction).")
    product: v.OptionalCode = Field(default=None, description="Product code (no interaction).")
    channel: v.OptionalCode = Field(default=None, description="Channel code (no interaction).")
    touchpoint: v.OptionalCode = Field(
        default=None, description="Touchpoint code (no interaction)."
    )

    @field_validator("answered_at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        # Unlike an interaction, an answer imported from another tool has no workspace clock to
        # be read in: guessing the zone would shift NPS between days and months silently.
        if value.tzinfo is None:
            raise ValueError("needs a time-zone offset, e.g. 2026-10-01T09:30:00+03:00 or …Z")
        return value


class ResponseOut(BaseModel):
    external_id: str
    survey: str
    customer: str | None
    interaction: str | None = Field(description='"source:external_id", or null.')
    score: int | None
    comment: str
    answers: dict[str, Any]
    language: str
    answered_at: str
    branch: str | None
    employee: str | None
    product: str | None
    channel: str | None
    touchpoint: str | None
    source: str = Field(description="web, email (one-click score), link or import.")
    may_contact: bool | None
    updated_at: str


class ResponsePage(BaseModel):
    items: list[ResponseOut]
    next: str | None


class SurveyIn(BaseModel):
    """A survey as a whole: ``PUT`` replaces every field (a field left out takes its default)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Lower-case word, unique in the workspace.", examples=["nps"])
    name: str = Field(examples=["After the store visit"])
    kind: str = Field(description="transactional or relationship.", examples=["transactional"])
    is_active: bool = True
    definition: dict[str, Any] = Field(
        description="Languages, questions and texts per language, branding (docs/surveys-api.md)."
    )
    rules: dict[str, Any] = Field(
        default_factory=dict,
        description="Trigger, fatigue limits, send window, channels, reminder, expiry; "
        "left-out rules take their defaults.",
        examples=[{"touchpoints": ["STORE-SALE"], "quiet_period_days": 30}],
    )


class SurveyOut(BaseModel):
    code: str
    name: str
    kind: str
    is_active: bool
    definition: dict[str, Any]
    rules: dict[str, Any]
    public_link: str = Field(description="The web link (and QR code target) anyone may answer.")
    active_since: str
    created_at: str
    updated_at: str


class SurveyList(BaseModel):
    items: list[SurveyOut]
    next: None = None


class UnsubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: v.Code = Field(max_length=128, description="The customer's external_id.")


class UnsubscribeOut(BaseModel):
    customer: str
    unsubscribed_at: str
    already: bool = Field(description="True when the customer had unsubscribed before.")


class UnsubscribeItem(BaseModel):
    customer: str
    channel: str = Field(description="The channel the unsubscribe came by (email, sms, link).")
    created_at: str
    source: str = Field(description="Where it came from: link, api, admin, webhook…")


class UnsubscribePage(BaseModel):
    items: list[UnsubscribeItem]
    next: str | None


class DecisionOut(BaseModel):
    survey: str
    interaction: str | None = Field(description='"source:external_id", or null.')
    outcome: str = Field(description="scheduled, skipped, sent, reminded, cancelled or failed.")
    reason: str = Field(
        description="matched, too_old, unsubscribed, no_consent, bounced, no_contact, "
        "sampled_out, quiet_period, survey_limit, branch_cap, survey_inactive, expired, …"
    )
    detail: str
    created_at: str
    invitation_status: str | None


class DecisionPage(BaseModel):
    items: list[DecisionOut]
    next: str | None


class Detail(BaseModel):
    detail: str
