"""Open-loop latency: requests go out on a fixed schedule, however long the answers take.

Latency is measured from the moment a request was *due*, so a request that waited for a free
client thread (because earlier ones were slow) is charged for the wait: no coordinated omission.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .server import HOST, Response, request

# What a browser sends for a page (the API client's JSON headers would not be representative).
BROWSER_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.9",
    "User-Agent": "cxloop-bench/1.0",
}


@dataclass
class LatencyResult:
    requests: int
    seconds: float  # from the first due time to the last answer
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    late_dispatch: int = 0  # requests the scheduler itself sent more than 5 ms late

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        values = sorted(self.latencies_ms)
        if not values:
            return float("nan")
        rank = min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))
        return values[rank]


def run_open_loop(
    port: int,
    key: str,
    body_for: Callable[[int], bytes],
    *,
    rate: float,
    seconds: float,
    threads: int = 8,
    path: str = "/api/v1/interactions",
) -> LatencyResult:
    """``POST path`` with ``body_for(i)`` as request *i*; 201 is the expected answer."""

    def call(index: int) -> Response:
        return request(port, "POST", path, body=body_for(index), key=key, timeout=30)

    return run_calls(call, rate=rate, seconds=seconds, threads=threads, expect=201)


def run_open_loop_get(
    port: int,
    path_for: Callable[[int], str],
    *,
    rate: float,
    seconds: float,
    threads: int = 8,
    expect: int = 200,
) -> LatencyResult:
    """``GET path_for(i)`` as request *i*, as a browser asks for a page (no cookies, no
    redirects followed: a 303 is the answer measured)."""

    def call(index: int) -> Response:
        return browser_get(port, path_for(index))

    return run_calls(call, rate=rate, seconds=seconds, threads=threads, expect=expect)


def browser_get(port: int, path: str, timeout: float = 30) -> Response:
    """``GET path`` on its own connection, with a browser's headers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=BROWSER_HEADERS)
        resp = conn.getresponse()
        return Response(resp.status, resp.read())
    finally:
        conn.close()


def run_calls(
    call: Callable[[int], Response],
    *,
    rate: float,
    seconds: float,
    threads: int = 8,
    expect: int = 200,
) -> LatencyResult:
    """Make ``call(i)`` due at ``i / rate`` for ``seconds``; any other status than ``expect``
    is kept (the first five) in ``errors``."""
    total = max(1, round(rate * seconds))
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    lock = threading.Lock()
    result = LatencyResult(requests=total, seconds=0.0)
    last_done = [0.0]

    def worker() -> None:
        while True:
            job = due.get()
            if job is None:
                return
            index, due_at = job
            try:
                resp = call(index)
                status, detail = resp.status, resp.body[:200].decode(errors="replace")
            except OSError as exc:
                status, detail = -1, repr(exc)
            done = time.perf_counter()
            with lock:
                result.latencies_ms.append((done - due_at) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status != expect and len(result.errors) < 5:
                    result.errors.append(f"{status}: {detail}")
                last_done[0] = max(last_done[0], done)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    start = time.perf_counter() + 0.05
    try:
        for i in range(total):
            due_at = start + i / rate
            pause = due_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            elif pause < -0.005:
                result.late_dispatch += 1
            due.put((i, due_at))
    finally:
        for _ in pool:
            due.put(None)
        for t in pool:
            t.join(timeout=60)
    result.seconds = max(last_done[0] - start, 1e-9)
    return result


def single_body(source: str, external_id: str, item: dict[str, object]) -> bytes:
    return json.dumps(item | {"source": source, "external_id": external_id}).encode()
