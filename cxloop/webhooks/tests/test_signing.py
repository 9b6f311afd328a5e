"""What a receiver gets: the payload, the headers, a signature it can check on its own."""

from __future__ import annotations

import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from cxloop.accounts.models import Workspace
from cxloop.core import clock
from cxloop.webhooks import delivery, events
from cxloop.webhooks.models import Delivery

from .helpers import SECRET, Receiver, hook

pytestmark = pytest.mark.django_db

CASE = {"id": 17, "status": "open", "customer": "C0042", "reason": "slow call-back"}


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, "sha256").hexdigest()


def docs_verify() -> Any:
    """The ``verify`` of docs/webhooks.md's snippet, as a receiver would paste it."""
    text = (Path(settings.BASE_DIR) / "docs" / "webhooks.md").read_text()
    (snippet,) = [s for s in re.findall(r"```python\n(.*?)```", text, re.S) if "def verify" in s]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "docs/webhooks.md", "exec"), namespace)  # noqa: S102
    return namespace["verify"]


def test_a_case_event_arrives_signed_and_verifiable(
    workspace: Workspace, receiver: Receiver
) -> None:
    endpoint = hook(workspace, receiver.url)

    assert events.emit(workspace.pk, events.CASE_OPENED, CASE) == 1
    assert delivery.deliver_due() == {"delivered": 1}

    ((headers, raw),) = receiver.received
    stored = Delivery.objects.get(endpoint=endpoint)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "cxloop-webhooks/1"
    assert headers["X-Cxloop-Event"] == "case.opened"
    assert headers["X-Cxloop-Event-Id"] == stored.event_id.hex
    timestamp = headers["X-Cxloop-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    signature = headers["X-Cxloop-Signature"]
    assert signature == independent_signature(SECRET, timestamp, raw)
    assert delivery.verify(SECRET, timestamp, raw, signature)
    assert docs_verify()(SECRET, timestamp, raw, signature)

    payload = json.loads(raw)
    assert set(payload) == {"id", "type", "created_at", "workspace", "data"}
    assert payload["id"] == stored.event_id.hex
    assert payload["type"] == "case.opened"
    assert payload["workspace"] == "acme"
    assert payload["data"] == CASE
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", payload["created_at"])


def test_a_tampered_body_a_stale_timestamp_or_another_secret_do_not_verify(
    workspace: Workspace, receiver: Receiver
) -> None:
    hook(workspace, receiver.url)
    events.emit(workspace.pk, events.CASE_CLOSED, CASE)
    delivery.deliver_due()
    ((headers, raw),) = receiver.received
    timestamp, signature = headers["X-Cxloop-Timestamp"], headers["X-Cxloop-Signature"]
    tampered = raw.replace(b'"open"', b'"closed"')
    sent = int(timestamp)

    for check in (delivery.verify, docs_verify()):
        assert check(SECRET, timestamp, raw, signature, now=sent + 299)
        assert not check(SECRET, timestamp, tampered, signature)
        assert not check(SECRET, timestamp, raw, signature, now=sent + 301)  # replayed later
        assert not check(SECRET, timestamp, raw, signature, now=sent - 301)  # from the future
        assert not check(SECRET, str(sent + 1), raw, signature)  # timestamp changed
        assert not check("whsec_another", timestamp, raw, signature)
        assert not check(SECRET, "yesterday", raw, signature)
        assert not check(SECRET, timestamp, raw, "v1=" + "0" * 64)
        assert not check(SECRET, timestamp, raw, "")
    assert delivery.verify(SECRET, timestamp, raw, signature, now=clock.now())


def test_every_endpoint_gets_the_same_event_id_and_its_own_signature(
    workspace: Workspace, receiver: Receiver
) -> None:
    hook(workspace, receiver.url)
    other = hook(workspace, receiver.url + "/second")
    other.secret = "whsec_second"
    other.save()

    events.emit(workspace.pk, events.PROBLEM_UPDATED, {"code": "P-1"})
    delivery.deliver_due()

    first, second = receiver.received
    assert first[1] == second[1]  # one body, one event id
    assert first[0]["X-Cxloop-Event-Id"] == second[0]["X-Cxloop-Event-Id"]
    secrets = {"/hooks/cxloop": SECRET, "/hooks/cxloop/second": "whsec_second"}
    for (headers, raw), path in zip(receiver.received, receiver.paths, strict=True):
        expected = independent_signature(secrets[path], headers["X-Cxloop-Timestamp"], raw)
        assert headers["X-Cxloop-Signature"] == expected
    assert sorted(receiver.paths) == sorted(secrets)


def test_sign_matches_its_definition() -> None:
    body = b'{"id":"x"}'
    assert delivery.sign("k", 1700000000, body) == independent_signature("k", "1700000000", body)
