"""A real SMTP server on loopback that counts what it receives, in a process of its own.

``python -m benchmarks.smtp_sink --port P`` runs aiosmtpd (the SMTP protocol in full: EHLO,
MAIL, RCPT, DATA) and answers commands on stdin, one line each, with one JSON line on stdout:

- ``stats``: messages, distinct recipients, bytes, the wall-clock time (``time.time()``) of the
  first and the last message since the last reset, and the recipients if ``stats full``;
- ``reset``: forget everything received so far;
- ``sample PATH``: write the first message received since the last reset to PATH.

The sink runs in its own process so that the benchmark process (polling it, or sending the
reference load) never slows it down, and so that its CPU time can be measured apart.
``SmtpSink`` starts and drives it; ``send_raw`` is the reference client.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from .server import HOST, ROOT, free_port


class Counter:
    """aiosmtpd handler: counts messages and recipients (the event loop runs in a thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.messages = 0
            self.bytes = 0
            self.recipients: set[str] = set()
            self.first = 0.0
            self.last = 0.0
            self.sample: bytes | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.time()
        content = envelope.content
        with self.lock:
            if not self.messages:
                self.first = now
                self.sample = content
            self.messages += 1
            self.last = now
            self.bytes += len(content)
            self.recipients.update(envelope.rcpt_tos)
        return "250 OK"

    def stats(self, full: bool) -> dict[str, Any]:
        with self.lock:
            stats: dict[str, Any] = {
                "messages": self.messages,
                "recipients": len(self.recipients),
                "bytes": self.bytes,
                "first": self.first,
                "last": self.last,
            }
            if full:
                stats["addresses"] = sorted(self.recipients)
            return stats


def serve(port: int) -> None:
    from aiosmtpd.controller import Controller

    counter = Counter()
    controller = Controller(counter, hostname=HOST, port=port, ready_timeout=30)
    controller.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(json.dumps({"ready": port}), flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            answer: dict[str, Any]
            if command == "stats":
                answer = counter.stats(full=argument == "full")
            elif command == "reset":
                counter.reset()
                answer = {"ok": True}
            elif command == "sample":
                with counter.lock:
                    sample = counter.sample
                if sample is not None:
                    Path(argument).write_bytes(sample)
                answer = {"ok": sample is not None}
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        controller.stop()


class SmtpSink:
    """The sink as a subprocess on a free loopback port; stopped on exit, whatever happens."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.env = env
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> SmtpSink:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.smtp_sink", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env or dict(os.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        ready = self._read()
        if ready.get("ready") != self.port:
            self.stop()
            raise RuntimeError(f"the SMTP sink did not start: {ready}")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the SMTP sink is not running")
        return self.proc.pid

    def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the SMTP sink exited ({self.proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _ask(self, command: str) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stats(self, full: bool = False) -> dict[str, Any]:
        return self._ask("stats full" if full else "stats")

    def reset(self) -> None:
        self._ask("reset")

    def sample(self, path: Path) -> bool:
        return bool(self._ask(f"sample {path}").get("ok"))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # end of commands: the sink stops its server and exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def send_raw(port: int, message: bytes, count: int) -> float:
    """Seconds to send ``message`` ``count`` times, each to its own recipient, over one
    smtplib connection, from connecting to the last reply."""
    started = time.perf_counter()
    with smtplib.SMTP(HOST, port, timeout=30) as smtp:
        smtp.ehlo()
        for i in range(count):
            smtp.sendmail("noreply@localhost", [f"reference{i}@example.com"], message)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.smtp_sink")
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
