"""The CLI contracts other tools call exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from cxloop.accounts.models import ApiKey, AuditLog, Workspace
from cxloop.accounts.services import authenticate_api_key

pytestmark = pytest.mark.django_db


def test_workspace_create_makes_an_empty_workspace_and_audits(capsys: Any) -> None:
    call_command("workspace", "create", "--slug", "acme", "--name", "Acme SRL")

    workspace = Workspace.objects.get(slug="acme")
    assert workspace.name == "Acme SRL"
    assert AuditLog.objects.filter(workspace=workspace, action="workspace.created").exists()
    assert "acme" in capsys.readouterr().out


@pytest.mark.parametrize("slug", ["Acme", "-acme", "a b", "x" * 51, ""])
def test_workspace_create_refuses_a_bad_slug(slug: str) -> None:
    with pytest.raises(CommandError, match="slug"):
        call_command("workspace", "create", "--slug", slug, "--name", "X")
    assert not Workspace.objects.exists()


def test_workspace_create_refuses_a_taken_slug(workspace: Workspace) -> None:
    with pytest.raises(CommandError, match="already exists"):
        call_command("workspace", "create", "--slug", "acme", "--name", "Other")
    assert Workspace.objects.get(slug="acme").name == "Acme Telecom"


def test_apikey_create_prints_the_key_alone_on_the_last_line(
    workspace: Workspace, capsys: Any
) -> None:
    call_command("apikey", "create", "--workspace", "acme", "--name", "crm",
                 "--scopes", "ingest,read")  # fmt: skip

    last = capsys.readouterr().out.rstrip("\n").split("\n")[-1]
    key = authenticate_api_key(last)
    assert key is not None
    assert key.workspace == workspace
    assert key.scopes == ["ingest", "read"]
    # only the hash is stored
    assert last not in str(ApiKey.objects.values_list().get())


def test_apikey_create_refuses_unknown_scopes(workspace: Workspace) -> None:
    with pytest.raises(CommandError, match="unknown scope"):
        call_command("apikey", "create", "--workspace", "acme", "--name", "x", "--scopes", "root")
    assert not ApiKey.objects.exists()


def test_apikey_revoke_by_prefix(workspace: Workspace, capsys: Any) -> None:
    call_command("apikey", "create", "--workspace", "acme", "--name", "crm")
    raw = capsys.readouterr().out.strip().split("\n")[-1]
    call_command("apikey", "revoke", "--workspace", "acme", raw[:12])
    assert authenticate_api_key(raw) is None
    assert AuditLog.objects.filter(action="api_key.revoked").count() == 1


def test_the_console_script_runs_the_contract_end_to_end(tmp_path: Path) -> None:
    """`cxloop` as installed, in a fresh SQLite database: workspace, key, import."""
    env = {**os.environ, "CXLOOP_VAR_DIR": str(tmp_path), "DEBUG": "true"}
    env.pop("DATABASE_URL", None)
    cxloop = [str(Path(sys.executable).with_name("cxloop"))]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cxloop, *args], env=env, capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip

    assert run("migrate", "-v", "0").returncode == 0
    created = run("workspace", "create", "--slug", "shop", "--name", "Shop")
    assert created.returncode == 0, created.stderr
    key = run("apikey", "create", "--workspace", "shop", "--name", "crm", "--scopes", "ingest,read")
    assert key.stdout.strip().split("\n")[-1].startswith("cxl_")
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("external_id;name\nC1;Ana\nC2;Ion\n", encoding="utf-8")
    imported = run("import", "customers", str(csv_file), "--workspace", "shop")
    assert imported.returncode == 0, imported.stderr
    assert "2 rows: 2 created" in imported.stdout
    missing = run("import", "customers", str(csv_file), "--workspace", "nope")
    assert missing.returncode != 0
    assert "no workspace with slug 'nope'" in missing.stderr
