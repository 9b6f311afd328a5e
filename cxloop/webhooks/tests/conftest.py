"""Every test of the webhooks gets a fresh HTTP receiver on loopback when it asks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .helpers import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()
