"""CPU time spent by a set of processes during a phase.

Wall-clock rates depend on whatever else the machine runs; CPU time per row is steadier. A
meter polls the processes a selector picks (gunicorn's workers, the PostgreSQL backends of the
benchmark's database) and adds up what each used between the start and its last sample, so a
process that exits in the middle loses at most one polling interval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

import psutil

Key = tuple[int, float]  # pid, create time: a pid may be reused


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


class CpuMeter:
    def __init__(self, select: Callable[[], list[psutil.Process]], interval: float = 0.25) -> None:
        self.select = select
        self.interval = interval
        self.baseline: dict[Key, float] = {}
        self.last: dict[Key, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _sample(self) -> dict[Key, float]:
        seen = {}
        for proc in self.select():
            try:
                with proc.oneshot():
                    seen[(proc.pid, proc.create_time())] = cpu_seconds(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return seen

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.last.update(self._sample())

    def __enter__(self) -> CpuMeter:
        self.baseline = self._sample()
        self.last = dict(self.baseline)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.last.update(self._sample())

    @property
    def seconds(self) -> float:
        return sum(cpu - self.baseline.get(key, 0.0) for key, cpu in self.last.items())


def process_tree(pid: int) -> Callable[[], list[psutil.Process]]:
    def select() -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    return select


def postgres_backends(dbname: str) -> Callable[[], list[psutil.Process]]:
    """The server processes serving ``dbname`` (PostgreSQL names them in their title)."""
    marker = f" {dbname} "

    def select() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["name"] == "postgres" and marker in f"{cmdline} ":
                found.append(proc)
        return found

    return select
