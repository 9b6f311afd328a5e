"""What an integrator sends and receives for cases and problems (``/api/v1/cases``,
``/api/v1/problems``; docs/cases-api.md).

The output models mirror ``serialise.case_data``/``problem_data`` (the same JSON the webhooks
carry) and allow extra keys, so a field added there reaches the API without a change here.
Bodies forbid unknown keys: a misspelt field is a 422, not a silent no-op.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cxloop.core.api import ListParams

from .models import AttemptResult, ProblemStatus, Solved

# --- cases: reading -------------------------------------------------------------------------


class CaseParams(ListParams):
    response: str | None = Field(
        default=None, description="Only the case of this response (its external_id)."
    )
    status: list[str] = Field(
        default_factory=list,
        description="open, in_progress, resolved, unreachable, declined; repeat the parameter "
        "or separate by commas for several (`status=open,in_progress`).",
    )
    assignee: str | None = Field(
        default=None, description="Employee code of the assignee; `none`: the CX team's queue."
    )
    branch: str | None = Field(default=None, description="Branch code.")
    survey: str | None = Field(default=None, description="Survey code.")
    breached: bool | None = Field(
        default=None, description="Only cases that missed (or met) the SLA."
    )


class _Open(BaseModel):
    # Output models keep keys they do not declare (see the module's docstring).
    model_config = ConfigDict(extra="allow")


class CallbackOut(_Open):
    apologised: bool | None
    solved: str | None = Field(description="yes, partly or no; null until the call-back.")
    reasons: list[str] = Field(description="Root-cause reason codes.")
    expected: str
    notes: str


class AttemptOut(_Open):
    at: str
    result: str


class ContactOut(_Open):
    may_contact: bool | None
    phone: str


class CaseOut(_Open):
    id: int
    status: str = Field(description="open, in_progress, resolved, unreachable or declined.")
    source: str = Field(description="response, at_risk or manual.")
    response: str | None = Field(description="The response's external_id.")
    survey: str | None
    customer: str | None = Field(description="The customer's external_id.")
    account: str | None = Field(description="The B2B account's external_id (at_risk cases).")
    score: int | None
    comment: str
    matched: list[str] = Field(description="Why the case opened (the alert rules that matched).")
    priority: str = Field(description="normal or urgent.")
    assignee: str | None = Field(description="Employee code; null: the CX team's queue.")
    queue: str | None = Field(description='"cx" when the case waits in the CX team\'s queue.')
    escalation_level: int
    opened_at: str
    due_at: str = Field(description="The SLA deadline.")
    closed_at: str | None
    breached: bool
    branch: str | None
    employee: str | None
    product: str | None
    channel: str | None
    touchpoint: str | None
    callback: CallbackOut
    attempts: list[AttemptOut]
    problem: int | None = Field(description="The id of the linked problem.")
    updated_at: str
    contact: ContactOut | None = Field(
        default=None,
        description="Only for keys with the `admin` scope: the customer's call-back number and "
        "whether they agreed to be called. Left out otherwise.",
    )


class EventOut(_Open):
    at: str
    kind: str = Field(
        description="opened, assigned, warned, escalated, attempt, callback, coaching, problem, "
        "closed or reopened."
    )
    via: str = Field(description="web, api or system.")
    from_assignee: str | None
    to_assignee: str | None
    result: str | None
    note: str


class CaseDetailOut(CaseOut):
    events: list[EventOut] = Field(description="The case's history, oldest first.")


class CasePage(BaseModel):
    items: list[CaseOut]
    next: str | None


# --- cases: writing -------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    NULLABLE: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        """A field that may be left out may not be null, unless the model says so."""
        if isinstance(data, dict):
            nullable = cls.NULLABLE
            for name, value in data.items():
                if value is None and name in cls.model_fields and name not in nullable:
                    raise ValueError(f"{name} may be left out but not null")
        return data


class CallbackIn(_Body):
    """The call-back script. Fields left out keep what is recorded; a first call-back needs
    ``apologised``, ``solved`` and at least one reason."""

    apologised: bool | None = Field(default=None, description="Did we apologise?")
    solved: Solved | None = Field(default=None, description="Solved on the call: yes, partly, no.")
    reasons: list[str] | None = Field(default=None, description="Root-cause reason codes.")
    expected: str | None = Field(
        default=None, max_length=5000, description="What the customer expected."
    )
    notes: str | None = Field(default=None, max_length=10000)


class AssignIn(_Body):
    NULLABLE: ClassVar[tuple[str, ...]] = ("assignee",)

    assignee: str | None = Field(description="Employee code; null: the CX team's queue.")
    note: str = Field(default="", max_length=2000)


class AttemptIn(_Body):
    result: AttemptResult = Field(
        description="reached, no_answer, busy, voicemail or wrong_number."
    )
    note: str = Field(default="", max_length=2000)


class CloseIn(_Body):
    status: Literal["resolved", "unreachable", "declined"]
    note: str = Field(default="", max_length=2000)


# --- problems -------------------------------------------------------------------------------


class ProblemParams(ListParams):
    status: list[str] = Field(
        default_factory=list,
        description="open, in_progress, fixed, verified, not_effective; repeat or separate by "
        "commas for several.",
    )


class ProblemOut(_Open):
    id: int
    title: str
    description: str
    function: str = Field(description="The responsible function, e.g. Logistics.")
    owner: str | None = Field(description="Employee code.")
    deadline: str | None
    authority: str
    resources: str
    status: str = Field(description="open, in_progress, fixed, verified or not_effective.")
    reasons: list[str]
    cases: int = Field(description="How many cases are linked to it.")
    fixed_on: str | None
    effect: dict[str, Any] | None = Field(description="The last measurement of the fix.")
    created_at: str
    updated_at: str


class ProblemPage(BaseModel):
    items: list[ProblemOut]
    next: str | None


class ProblemIn(_Body):
    NULLABLE: ClassVar[tuple[str, ...]] = ("owner", "deadline")

    title: str = Field(min_length=1, max_length=200, pattern=r"\S")
    description: str = ""
    function: str = Field(default="", max_length=100)
    owner: str | None = Field(default=None, description="Employee code.")
    deadline: dt.date | None = None
    authority: str = ""
    resources: str = ""
    reasons: list[str] = Field(default_factory=list, description="Reason codes.")
    branches: list[str] = Field(
        default_factory=list,
        description="Branch codes where the problem is; none: everywhere (the effect is "
        "measured there).",
    )


class ProblemPatch(_Body):
    """Fields left out are kept. ``status`` moves along open → in_progress → fixed (verified and
    not_effective come from ``POST /problems/{id}/verify``)."""

    NULLABLE: ClassVar[tuple[str, ...]] = ("owner", "deadline", "fixed_on")

    title: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"\S")
    description: str | None = None
    function: str | None = Field(default=None, max_length=100)
    owner: str | None = Field(default=None, description="Employee code; null: no owner.")
    deadline: dt.date | None = None
    authority: str | None = None
    resources: str | None = None
    status: ProblemStatus | None = None
    fixed_on: dt.date | None = Field(default=None, description="Defaults to today when fixed.")
    reasons: list[str] | None = Field(default=None, description="Replaces the linked codes.")
    branches: list[str] | None = Field(default=None, description="Replaces the branch codes.")


class Detail(BaseModel):
    detail: str
