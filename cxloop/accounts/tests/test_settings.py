"""A wrong environment value stops start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "DEBUG")}
    return subprocess.run(
        [sys.executable, "-m", "cxloop", "check"],
        env={**base, "CXLOOP_VAR_DIR": str(tmp_path), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "false"}, "SECRET_KEY"),
        ({"TIME_ZONE": "Europe/Atlantis"}, "TIME_ZONE"),
        ({"DATABASE_URL": "mysql://x@localhost/db", "SECRET_KEY": "k"}, "DATABASE_URL"),
        ({"DATABASE_URL": "nonsense", "SECRET_KEY": "k"}, "DATABASE_URL"),
        ({"EMAIL_PORT": "twenty-five"}, "EMAIL_PORT"),
        ({"EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"}, "EMAIL_USE_TLS"),
        ({"LANGUAGE_CODE": "fr"}, "LANGUAGE_CODE"),
        ({"API_MAX_BODY_BYTES": "12"}, "API_MAX_BODY_BYTES"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_a_wrong_value_stops_start_up_naming_the_variable(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = start(tmp_path, **env)
    assert result.returncode != 0
    assert named in result.stderr.strip().splitlines()[-1]


def test_development_generates_a_secret_key_once(tmp_path: Path) -> None:
    assert start(tmp_path).returncode == 0
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert start(tmp_path).returncode == 0
    assert (tmp_path / "secret_key").read_text() == key
    assert oct((tmp_path / "secret_key").stat().st_mode)[-3:] == "600"
