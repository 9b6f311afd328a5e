"""Upserting customers by external id, one at a time or ten thousand at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from pydantic import ValidationError

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.core.validation import BatchResult, error_dict

from .models import Account, Customer
from .schemas import CustomerIn

# Fields copied as they are from the input onto the row.
PLAIN_FIELDS = ("name", "email", "phone", "language", "time_zone", "segment", "is_b2b")


def validate_customer(workspace: Workspace, item: Any) -> CustomerIn:
    return CustomerIn.model_validate(item, context={"phone_region": workspace.phone_region or None})


def _accounts(workspace: Workspace, items: Sequence[CustomerIn]) -> dict[str, Account]:
    names: dict[str, str] = {}
    for item in items:
        if item.account:
            names.setdefault(item.account, "")
            if item.account_name:
                names[item.account] = item.account_name
    if not names:
        return {}
    found = {
        a.external_id: a
        for a in Account.objects.filter(workspace=workspace, external_id__in=list(names))
    }
    missing = [
        Account(workspace=workspace, external_id=ext, name=names[ext])
        for ext in names
        if ext not in found
    ]
    Account.objects.bulk_create(missing, ignore_conflicts=True)
    renamed = [a for ext, a in found.items() if names[ext] and a.name != names[ext]]
    for account in renamed:
        account.name = names[account.external_id]
    Account.objects.bulk_update(renamed, ["name"])
    return {
        a.external_id: a
        for a in Account.objects.filter(workspace=workspace, external_id__in=list(names))
    }


def _apply(customer: Customer, item: CustomerIn, accounts: dict[str, Account]) -> bool:
    """Write the given fields onto ``customer``; True when anything changed."""
    changed = False
    given = item.model_fields_set
    for name in PLAIN_FIELDS:
        if name in given:
            value = getattr(item, name)
            value = (False if name == "is_b2b" else "") if value is None else value
            if getattr(customer, name) != value:
                setattr(customer, name, value)
                changed = True
    if "account" in given:
        account = accounts.get(item.account) if item.account else None
        if customer.account_id != (account.pk if account else None):
            customer.account = account
            changed = True
    if item.consent:
        merged = {**customer.consent, **item.consent}
        if merged != customer.consent:
            customer.consent = merged
            changed = True
    if item.attributes:
        merged = {**customer.attributes, **item.attributes}
        if merged != customer.attributes:
            customer.attributes = merged
            changed = True
    return changed


UPDATE_FIELDS = [*PLAIN_FIELDS, "account", "consent", "attributes", "updated_at"]


def upsert_customers(workspace: Workspace, raw_items: Sequence[Any]) -> BatchResult:
    """Validate and upsert; each item is counted as created, updated, unchanged or rejected."""
    result = BatchResult()
    valid: list[tuple[int, CustomerIn]] = []
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            result.reject(index, {"__all__": ["an item must be a JSON object"]})
            continue
        try:
            valid.append((index, validate_customer(workspace, raw)))
        except ValidationError as exc:
            result.reject(index, error_dict(exc))
    if not valid:
        return result
    for attempt in range(2):
        try:
            with transaction.atomic():
                counts = _write(workspace, [item for _, item in valid])
            break
        except IntegrityError:
            # Another request created one of these customers at the same moment; on the second
            # pass it is found and updated instead.
            if attempt:
                raise
    result.created, result.updated, result.unchanged = counts
    result.accepted = len(valid)
    result.errors.sort(key=lambda e: e["index"])
    return result


def _write(workspace: Workspace, items: list[CustomerIn]) -> tuple[int, int, int]:
    accounts = _accounts(workspace, items)
    ids = list({item.external_id for item in items})
    existing: dict[str, Customer] = {}
    for start in range(0, len(ids), 5000):
        for customer in Customer.objects.filter(
            workspace=workspace, external_id__in=ids[start : start + 5000]
        ):
            existing[customer.external_id] = customer
    fresh: dict[str, Customer] = {}
    changed: dict[str, Customer] = {}
    created = updated = unchanged = 0
    for item in items:
        ext = item.external_id
        if ext in existing or ext in fresh:
            customer = existing.get(ext) or fresh[ext]
            if _apply(customer, item, accounts):
                updated += 1
                if ext in existing:
                    changed[ext] = customer
            else:
                unchanged += 1
        else:
            customer = Customer(workspace=workspace, external_id=ext)
            _apply(customer, item, accounts)
            fresh[ext] = customer
            created += 1
    Customer.objects.bulk_create(list(fresh.values()), batch_size=1000)
    if changed:
        now = clock.now()
        for customer in changed.values():
            customer.updated_at = now
        Customer.objects.bulk_update(list(changed.values()), UPDATE_FIELDS, batch_size=1000)
    return created, updated, unchanged


def upsert_customer(workspace: Workspace, item: CustomerIn) -> tuple[Customer, str]:
    """One customer; returns it and "created", "updated" or "unchanged"."""
    result = upsert_customers(workspace, [item.model_dump(exclude_unset=True)])
    customer = Customer.objects.select_related("account").get(
        workspace=workspace, external_id=item.external_id
    )
    outcome = "created" if result.created else "updated" if result.updated else "unchanged"
    return customer, outcome
