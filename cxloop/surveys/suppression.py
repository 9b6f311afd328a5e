"""Who must never be contacted: unsubscribes (the customer), bounces and complaints (an address)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import audit
from cxloop.customers.models import Customer

from . import signals
from .models import DeliveryChannel, Suppression, SuppressionReason


@dataclass
class SuppressionIndex:
    """Suppressions of a set of customers, loaded with two queries."""

    customers: set[int] = field(default_factory=set)
    addresses: dict[tuple[str, str], str] = field(
        default_factory=dict
    )  # (channel, address) → reason

    def unsubscribed(self, customer: Customer) -> bool:
        return customer.pk in self.customers

    def address_reason(self, channel: str, address: str) -> str | None:
        return self.addresses.get((channel, address.lower() if channel == "email" else address))


def load_index(workspace: Workspace, customers: Iterable[Customer]) -> SuppressionIndex:
    people = list(customers)
    index = SuppressionIndex()
    ids = [c.pk for c in people]
    for start in range(0, len(ids), 5000):
        index.customers.update(
            Suppression.objects.filter(
                workspace=workspace,
                reason=SuppressionReason.UNSUBSCRIBED,
                customer_id__in=ids[start : start + 5000],
                address="",
            ).values_list("customer_id", flat=True)
        )
    addresses = sorted(
        {c.email.lower() for c in people if c.email} | {c.phone for c in people if c.phone}
    )
    for start in range(0, len(addresses), 5000):
        for channel, address, reason in Suppression.objects.filter(
            workspace=workspace, address__in=addresses[start : start + 5000]
        ).values_list("delivery_channel", "address", "reason"):
            if reason != SuppressionReason.UNSUBSCRIBED:
                index.addresses[(channel, address)] = reason
    return index


def is_unsubscribed(customer: Customer) -> bool:
    return Suppression.objects.filter(
        workspace_id=customer.workspace_id,
        customer=customer,
        reason=SuppressionReason.UNSUBSCRIBED,
    ).exists()


def unsubscribe(
    customer: Customer,
    *,
    via: str,
    source: str,
    actor: Any = None,
    api_key: Any = None,
    channel: str = DeliveryChannel.EMAIL,
) -> bool:
    """Stop every survey from contacting ``customer``; False if they already were.

    Consent is withdrawn for every channel (and audited); the suppression row keeps them
    out even if the CRM later sends ``consent: {"email": true}`` again.
    """
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        before = dict(customer.consent)
        after = {**before, "email": False, "sms": False}
        if before != after:
            customer.consent = after
            customer.save(update_fields=["consent", "updated_at"])
        address = customer.email.lower() if channel == DeliveryChannel.EMAIL else customer.phone
        try:
            with transaction.atomic():
                Suppression.objects.create(
                    workspace_id=customer.workspace_id,
                    customer=customer,
                    delivery_channel=channel,
                    address="",
                    reason=SuppressionReason.UNSUBSCRIBED,
                    source=source,
                )
        except IntegrityError:
            return False
        if address:
            # Keep the address too, so Delighted-style "GET unsubscribes" can list it.
            Suppression.objects.get_or_create(
                workspace_id=customer.workspace_id,
                delivery_channel=channel,
                address=address,
                reason=SuppressionReason.UNSUBSCRIBED,
                defaults={"customer": customer, "source": source},
            )
        audit(
            customer.workspace,
            "customer.unsubscribe",
            via=via,
            actor=actor,
            api_key=api_key,
            obj=customer,
            changes={"consent": [before, after], "source": source},
        )
        transaction.on_commit(
            lambda: signals.customer_unsubscribed.send(Customer, customer=customer, source=source)
        )
    return True


def suppress_address(
    workspace: Workspace, channel: str, address: str, reason: str, *, source: str
) -> bool:
    """Mark an address invalid after a bounce, complaint or refusal; False if it already was."""
    address = address.strip().lower() if channel == DeliveryChannel.EMAIL else address.strip()
    if not address:
        return False
    customer = (
        Customer.objects.filter(workspace=workspace, email__iexact=address).first()
        if channel == DeliveryChannel.EMAIL
        else Customer.objects.filter(workspace=workspace, phone=address).first()
    )
    _, created = Suppression.objects.get_or_create(
        workspace=workspace,
        delivery_channel=channel,
        address=address,
        reason=reason,
        defaults={"customer": customer, "source": source},
    )
    return created
