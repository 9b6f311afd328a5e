"""Recording events for the workspace's endpoints: an outbox.

``emit`` writes one pending ``Delivery`` per active endpoint that wants the event, in the
caller's transaction: call it inside the transaction of the change it announces, and a
rollback takes the event with it. Nothing is posted here; ``delivery.deliver_due`` posts from
the heartbeat, so a request never waits on someone else's server.

Every endpoint of one event gets the same body, with the same ``id``: receivers de-duplicate
by it (delivery is at least once).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.dispatch import receiver

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.surveys.models import Response
from cxloop.surveys.signals import response_saved

from .models import Delivery, Endpoint

log = logging.getLogger(__name__)

RESPONSE_CREATED = "response.created"
CASE_OPENED = "case.opened"
CASE_UPDATED = "case.updated"
CASE_CLOSED = "case.closed"
PROBLEM_UPDATED = "problem.updated"
EVENT_TYPES = (RESPONSE_CREATED, CASE_OPENED, CASE_UPDATED, CASE_CLOSED, PROBLEM_UPDATED)
# Sent only by "Send test event", to one endpoint, whatever it subscribes to.
PING = "ping"

Data = dict[str, Any]
INSERT_BATCH = 500
LOOKUP_CHUNK = 5000


def iso(value: dt.datetime) -> str:
    """UTC with a ``Z``, to the millisecond: ``2026-11-20T08:42:00.123Z``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def encode(payload: Data) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder)


def subscribed(workspace_id: int, event_type: str) -> list[Endpoint]:
    """The workspace's active endpoints that want ``event_type`` (none listed: all); one
    query, which also brings the workspace's slug."""
    return [
        endpoint
        for endpoint in Endpoint.objects.filter(
            workspace_id=workspace_id, is_active=True
        ).select_related("workspace")
        if endpoint.wants(event_type)
    ]


def _record(
    endpoints: Sequence[Endpoint], workspace: Workspace, event_type: str, datas: Iterable[Data]
) -> int:
    now = clock.now()
    deliveries: list[Delivery] = []
    for data in datas:
        event_id = uuid.uuid4()
        body = encode(
            {
                "id": event_id.hex,
                "type": event_type,
                "created_at": iso(now),
                "workspace": workspace.slug,
                "data": data,
            }
        )
        deliveries.extend(
            Delivery(
                workspace_id=workspace.pk,
                endpoint=endpoint,
                event_id=event_id,
                event_type=event_type,
                body=body,
                next_attempt_at=now,
                created_at=now,
            )
            for endpoint in endpoints
        )
    Delivery.objects.bulk_create(deliveries, batch_size=INSERT_BATCH)
    return len(deliveries)


def _check(event_type: str) -> None:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}; one of {EVENT_TYPES}")


def emit(workspace_id: int, event_type: str, data: Data | Callable[[], Data]) -> int:
    """Record the event for every subscribed endpoint; returns how many deliveries.

    ``data`` may be a function: it is called only when someone listens.
    """
    _check(event_type)
    endpoints = subscribed(workspace_id, event_type)
    if not endpoints:
        return 0
    value = data() if callable(data) else data
    return _record(endpoints, endpoints[0].workspace, event_type, [value])


def emit_many(
    workspace_id: int,
    event_type: str,
    datas: Iterable[Data | Callable[[], Data]] | Callable[[], Iterable[Data]],
) -> int:
    """Several events of one type (one event id each), with one query for the endpoints.

    ``datas`` may be a function returning them, or hold functions: called only when someone
    listens. Returns how many deliveries were recorded (events times endpoints).
    """
    _check(event_type)
    endpoints = subscribed(workspace_id, event_type)
    if not endpoints:
        return 0
    values = datas() if callable(datas) else (d() if callable(d) else d for d in datas)
    return _record(endpoints, endpoints[0].workspace, event_type, values)


def ping(endpoint: Endpoint) -> int:
    """A ``ping`` event for this endpoint alone (the settings page's "Send test event")."""
    data = {"message": "A test event from cxloop.", "endpoint": endpoint.pk}
    workspace = Workspace.objects.get(pk=endpoint.workspace_id)
    return _record([endpoint], workspace, PING, [data])


# --- responses ------------------------------------------------------------------------------


def _response_rows(workspace_id: int, external_ids: Sequence[str]) -> list[Data]:
    # Late import: the surveys API imports the surveys' importing module, which emits here.
    from cxloop.surveys.api import RESPONSE_FIELDS

    rows: list[Data] = []
    for start in range(0, len(external_ids), LOOKUP_CHUNK):
        rows.extend(
            Response.objects.filter(
                workspace_id=workspace_id,
                external_id__in=external_ids[start : start + LOOKUP_CHUNK],
            ).values(*RESPONSE_FIELDS, "created_at")
        )
    return rows


def response_data(pk: int) -> Data:
    """The response as the responses API shows it."""
    from cxloop.surveys.api import RESPONSE_FIELDS, serialise_response

    return serialise_response(Response.objects.filter(pk=pk).values(*RESPONSE_FIELDS).get())


def emit_imported(workspace: Workspace, rows: Sequence[Response]) -> int:
    """``response.created`` for the imported rows that were inserted, in one go.

    Call it in the insert's transaction, after ``insert_responses``. A row skipped by
    ``ON CONFLICT`` (another request inserted the same external_id first) is told apart by its
    ``created_at``, which the insert set on the row object: the stored one is the other's.
    Nothing but the endpoints query runs when no endpoint wants the event.
    """
    from cxloop.surveys.api import serialise_response

    def datas() -> list[Data]:
        ours = {(row.external_id, row.created_at) for row in rows if not row.is_test}
        stored = _response_rows(workspace.pk, [row.external_id for row in rows])
        order = {row.external_id: index for index, row in enumerate(rows)}
        stored.sort(key=lambda r: order[r["external_id"]])
        return [
            serialise_response(r) for r in stored if (r["external_id"], r["created_at"]) in ours
        ]

    return emit_many(workspace.pk, RESPONSE_CREATED, datas)


@receiver(response_saved, sender=Response, dispatch_uid="webhooks.events.response_saved")
def on_response_saved(sender: Any, response: Response, created: bool, **kwargs: Any) -> None:
    """``response.created`` for a new response (sent after its commit)."""
    if not created or response.is_test:
        return  # a CX manager trying the survey out is not feedback
    try:
        emit(response.workspace_id, RESPONSE_CREATED, lambda: response_data(response.pk))
    except Exception:
        # The answer is committed and the respondent is waiting for their thank-you page: a
        # fault here is logged, never theirs.
        log.exception("webhook event %s for response %s not recorded", RESPONSE_CREATED,
                      response.pk)  # fmt: skip
