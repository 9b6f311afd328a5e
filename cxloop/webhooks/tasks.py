"""Celery beat's share of the webhooks: post the deliveries that are due."""

from __future__ import annotations

from celery import shared_task

from .delivery import deliver_due


@shared_task(name="webhooks.tick", ignore_result=True)
def tick() -> dict[str, int]:
    """Safe to run from several workers at once: deliveries are claimed by a conditional
    UPDATE (see ``delivery.deliver_due``)."""
    return deliver_due()
