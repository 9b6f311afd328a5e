"""What an integrator sends and receives for an interaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cxloop.core import validation as v

REFERENCES = ("customer", "touchpoint", "branch", "employee", "product", "channel")


class InteractionIn(BaseModel):
    """One event from a CRM/ERP. Idempotent on (``source``, ``external_id``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str = Field(min_length=1, max_length=64, examples=["crm"])
    external_id: str = Field(min_length=1, max_length=128)
    customer: str = Field(min_length=1, max_length=128, description="The customer's external_id.")
    type: str = Field(
        min_length=1, max_length=64, examples=["store_visit", "call", "delivery", "dropped_call"]
    )
    occurred_at: dt.datetime = Field(
        description="ISO 8601; a time without offset is read in the workspace's time zone."
    )
    touchpoint: str | None = Field(default=None, max_length=64, description="Touchpoint code.")
    branch: str | None = Field(default=None, max_length=64, description="Branch code.")
    employee: str | None = Field(default=None, max_length=64, description="Employee code.")
    product: str | None = Field(default=None, max_length=64, description="Product code.")
    channel: str | None = Field(default=None, max_length=64, description="Channel code.")
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return v.check_slug(value, "source")

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return v.check_slug(value, "type")

    @field_validator("external_id", "customer")
    @classmethod
    def _code(cls, value: str) -> str:
        return v.check_code(value, "an id")

    @field_validator("touchpoint", "branch", "employee", "product", "channel")
    @classmethod
    def _optional_code(cls, value: str | None) -> str | None:
        return v.check_code(value) if value else None


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
