"""What an integrator sends and receives for a customer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cxloop.core import validation as v

CHANNEL_KEYS = r"^[a-z][a-z0-9_]{0,31}$"


class CustomerIn(BaseModel):
    """A customer, upserted by ``external_id``; fields left out keep their stored value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: v.Code = Field(max_length=128, description="Your id of the customer.")
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(
        default=None,
        max_length=40,
        description="Stored in E.164; without +country code it is "
        "read in the workspace's phone region.",
    )
    language: str | None = Field(default=None, max_length=16, examples=["ru", "ro", "en"])
    time_zone: str | None = Field(default=None, max_length=64, examples=["Europe/Chisinau"])
    segment: str | None = Field(default=None, max_length=64)
    is_b2b: bool | None = None
    account: v.OptionalCode = Field(
        default=None, max_length=128, description="External id of the customer's company (B2B)."
    )
    account_name: str | None = Field(default=None, max_length=200)
    consent: dict[str, bool] | None = Field(
        default=None,
        description='Per channel, e.g. {"email": true, "sms": false}; a channel not given '
        "follows the workspace default.",
    )
    attributes: dict[str, Any] | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return v.normalise_email(value) if value else value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value or "phone_region" not in (info.context or {}):
            # Without context (ninja parsing the body) the workspace's region is unknown; the
            # service validates again with it.
            return value
        region = (info.context or {})["phone_region"]
        return v.normalise_phone(value, region)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return v.check_language(value) if value else value

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str | None) -> str | None:
        return v.check_time_zone(value) if value else value

    @field_validator("consent")
    @classmethod
    def _consent(cls, value: dict[str, bool] | None) -> dict[str, bool] | None:
        if value:
            for key in value:
                v.check_slug(key, f"consent channel {key!r}")
        return value


class CustomerOut(BaseModel):
    external_id: str
    name: str
    email: str
    phone: str
    language: str
    time_zone: str
    segment: str
    is_b2b: bool
    account: str | None
    consent: dict[str, bool]
    attributes: dict[str, Any]
    created_at: str
    updated_at: str
