"""What an integrator sends and receives for an interaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cxloop.core import validation as v

REFERENCES = ("customer", "touchpoint", "branch", "employee", "product", "channel")


class InteractionIn(BaseModel):
    """One event from a CRM/ERP. Idempotent on (``source``, ``external_id``)."""

    model_config = ConfigDict(extra="forbid")

    source: v.Slug = Field(max_length=64, examples=["crm"])
    external_id: v.Code = Field(max_length=128)
    customer: v.Code = Field(max_length=128, description="The customer's external_id.")
    type: v.Slug = Field(
        max_length=64, examples=["store_visit", "call", "delivery", "dropped_call"]
    )
    occurred_at: dt.datetime = Field(
        description="ISO 8601; a time without offset is read in the workspace's time zone."
    )
    touchpoint: v.OptionalCode = Field(default=None, description="Touchpoint code.")
    branch: v.OptionalCode = Field(default=None, description="Branch code.")
    employee: v.OptionalCode = Field(default=None, description="Employee code.")
    product: v.OptionalCode = Field(default=None, description="Product code.")
    channel: v.OptionalCode = Field(default=None, description="Channel code.")
    attributes: dict[str, Any] = Field(default_factory=dict)


class InteractionOut(BaseModel):
    source: str
    external_id: str
    customer: str
    type: str
    occurred_at: str
    touchpoint: str | None
    branch: str | None
    employee: str | None
    product: str | None
    channel: str | None
    attributes: dict[str, Any]
    created_at: str
