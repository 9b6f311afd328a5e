# ruff: noqa: RUF001 - Cyrillic letters in expectations on purpose
"""The demo generator: deterministic, consistent, realistic enough to demo, and contained."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import io
import zoneinfo
from typing import Any

import phonenumbers
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cxloop.accounts.models import Workspace
from cxloop.accounts.services import create_workspace
from cxloop.customers.models import Account, Customer
from cxloop.demo.generator import DemoOptions, DemoSummary, default_end, generate_demo
from cxloop.interactions.models import Interaction
from cxloop.organisation.models import Branch, Employee, Region, Team, Touchpoint
from cxloop.surveys.definition import default_definition
from cxloop.surveys.models import Invitation
from cxloop.surveys.services import save_survey

pytestmark = pytest.mark.django_db

END = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
CHISINAU = zoneinfo.ZoneInfo("Europe/Chisinau")
CUSTOMER_FIELDS = (
    "external_id", "name", "email", "phone", "language", "time_zone", "segment", "is_b2b",
    "account__external_id", "account__name", "consent", "attributes",
)  # fmt: skip
INTERACTION_FIELDS = (
    "source", "external_id", "customer__external_id", "type", "occurred_at", "touchpoint__code",
    "branch__code", "employee__code", "product__code", "channel__code", "attributes",
)  # fmt: skip


def demo(workspace: Workspace, customers: int = 300, seed: int = 7, **extra: Any) -> DemoSummary:
    options: dict[str, Any] = {"interactions": 10 * customers, "end": END, **extra}
    return generate_demo(workspace, DemoOptions(customers=customers, seed=seed, **options))


def digest(workspace: Workspace) -> str:
    """Everything generated, by codes and external ids (database ids differ between runs)."""
    h = hashlib.sha256()
    for row in (
        Customer.objects.filter(workspace=workspace)
        .order_by("external_id")
        .values_list(*CUSTOMER_FIELDS)
    ):
        h.update(repr(row).encode())
    for row in (
        Interaction.objects.filter(workspace=workspace)
        .order_by("source", "external_id")
        .values_list(*INTERACTION_FIELDS)
    ):
        h.update(repr(row).encode())
    for row in Employee.objects.filter(workspace=workspace).values_list(
        "code", "name", "title", "team__code", "branch__code", "supervisor__code"
    ):
        h.update(repr(row).encode())
    return h.hexdigest()


@pytest.fixture
def demo_workspace(workspace: Workspace) -> Workspace:
    demo(workspace)
    return workspace


def test_the_same_seed_gives_identical_data_and_another_seed_different_data(
    workspace: Workspace, other_workspace: Workspace
) -> None:
    third = create_workspace("third", "Third", via="cli")
    demo(workspace, seed=7)
    demo(other_workspace, seed=7)
    demo(third, seed=8)

    assert digest(workspace) == digest(other_workspace)
    assert digest(workspace) != digest(third)


def test_small_chunks_write_the_same_number_of_rows_and_link_them_right(
    workspace: Workspace,
) -> None:
    demo(workspace, customers=250, interactions=1234, chunk_size=97)

    assert Customer.objects.filter(workspace=workspace).count() == 250
    assert Interaction.objects.filter(workspace=workspace).count() == 1234
    # A customer id mixed up between chunks would send customers to random stores; most store
    # visits are at the customer's own branch.
    visits = Interaction.objects.filter(workspace=workspace, channel__code="store").values_list(
        "branch__code", "customer__attributes"
    )
    at_home = sum(branch == attributes["home_branch"] for branch, attributes in visits)
    assert at_home / len(visits) > 0.75


def test_counts_are_as_asked_and_the_organisation_is_complete(demo_workspace: Workspace) -> None:
    ws = demo_workspace
    assert Customer.objects.filter(workspace=ws).count() == 300
    assert Interaction.objects.filter(workspace=ws).count() == 3000
    assert Region.objects.filter(workspace=ws).count() == 5
    assert Branch.objects.filter(workspace=ws).count() == 30
    assert Employee.objects.filter(workspace=ws).count() == 200
    assert not Branch.objects.filter(workspace=ws, manager__isnull=True).exists()
    teams_per_branch = collections.Counter(
        Team.objects.filter(workspace=ws).values_list("branch__code", flat=True)
    )
    assert set(teams_per_branch.values()) <= {2, 3}
    assert not Touchpoint.objects.filter(workspace=ws, stage__journey__isnull=True).exists()
    assert Touchpoint.objects.filter(workspace=ws).count() == 22
    assert Touchpoint.objects.filter(workspace=ws, code="store-visit").exists()


def test_every_employee_below_the_regional_directors_reports_up_a_full_line(
    demo_workspace: Workspace,
) -> None:
    staff = {e.pk: e for e in Employee.objects.filter(workspace=demo_workspace)}
    top = [e for e in staff.values() if e.supervisor_id is None]
    assert {e.title for e in top} == {"regional director"}
    assert len(top) == 5
    for employee in staff.values():
        if employee.supervisor_id is None:
            continue
        boss = staff[employee.supervisor_id]  # KeyError: a supervisor in another workspace
        if employee.title == "team supervisor":
            assert boss.title == "branch manager"
            assert boss.branch_id == employee.branch_id
        elif employee.title == "branch manager":
            assert boss.title == "regional director"
        else:
            assert boss.title == "team supervisor"
            assert boss.team_id == employee.team_id
    for branch in Branch.objects.filter(workspace=demo_workspace).select_related("manager"):
        assert branch.manager is not None
        assert branch.manager.branch_id == branch.pk
        assert branch.manager.title == "branch manager"


def test_interactions_reference_only_rows_of_their_own_workspace(
    demo_workspace: Workspace, other_workspace: Workspace
) -> None:
    demo(other_workspace, customers=50, seed=3)
    for ws in (demo_workspace, other_workspace):
        rows = Interaction.objects.filter(workspace=ws).values_list(
            "customer__workspace", "touchpoint__workspace", "branch__workspace",
            "employee__workspace", "product__workspace", "channel__workspace",
        )  # fmt: skip
        workspaces = {w for row in rows for w in row if w is not None}
        assert workspaces == {ws.pk}
    accounts = Customer.objects.filter(account__isnull=False).values_list(
        "workspace", "account__workspace"
    )
    assert all(a == b for a, b in accounts)


def test_employees_serve_at_their_own_branch_and_the_channel_follows_the_touchpoint(
    demo_workspace: Workspace,
) -> None:
    rows = Interaction.objects.filter(workspace=demo_workspace).values_list(
        "branch", "employee__branch", "channel", "touchpoint__channel", "employee", "type"
    )
    for branch, employee_branch, channel, touchpoint_channel, employee, kind in rows:
        assert employee is None or employee_branch == branch
        assert channel == touchpoint_channel
        if kind in ("store_visit", "installation", "service_job"):
            assert branch is not None and employee is not None


def test_there_are_fewer_interactions_on_sunday_and_almost_none_at_night(
    demo_workspace: Workspace,
) -> None:
    local = [
        at.astimezone(CHISINAU)
        for at in Interaction.objects.filter(workspace=demo_workspace).values_list(
            "occurred_at", flat=True
        )
    ]
    weekdays = collections.Counter(at.weekday() for at in local)
    assert weekdays[6] < 0.5 * weekdays[0]
    night = sum(1 for at in local if 1 <= at.hour < 6)
    assert night < 0.01 * len(local)
    store_hours = {
        at.astimezone(CHISINAU).hour
        for at in Interaction.objects.filter(
            workspace=demo_workspace, channel__code="store"
        ).values_list("occurred_at", flat=True)
    }
    assert store_hours <= set(range(9, 20))


def test_interactions_lie_in_the_months_before_the_end_and_are_stored_in_utc(
    demo_workspace: Workspace,
) -> None:
    times = list(
        Interaction.objects.filter(workspace=demo_workspace).values_list("occurred_at", flat=True)
    )
    assert all(at.utcoffset() == dt.timedelta(0) for at in times)
    assert max(times) < END
    assert min(times) >= END - dt.timedelta(days=367)
    assert max(times) > END - dt.timedelta(days=3)
    # 02:00 in Chișinău; a time zone mistake would shift the store hours out of 09-20 (above).
    assert default_end(dt.datetime(2026, 5, 4, 23, 30, tzinfo=CHISINAU)) == dt.datetime(
        2026, 5, 4, tzinfo=dt.UTC
    )


def test_phones_are_valid_moldovan_mobiles_and_unique(demo_workspace: Workspace) -> None:
    phones = [
        p for p in Customer.objects.filter(workspace=demo_workspace).values_list("phone", flat=True)
        if p
    ]  # fmt: skip
    assert len(phones) > 250
    assert len(set(phones)) == len(phones)
    for phone in phones:
        number = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(number), phone
        assert phonenumbers.region_code_for_number(number) == "MD"
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == phone


def test_customers_speak_romanian_russian_and_english_and_some_are_companies(
    workspace: Workspace,
) -> None:
    demo(workspace, customers=2000, interactions=0)
    customers = Customer.objects.filter(workspace=workspace)
    languages = collections.Counter(customers.values_list("language", flat=True))
    assert 0.45 < languages["ro"] / 2000 < 0.65
    assert 0.30 < languages["ru"] / 2000 < 0.50
    assert 0.01 < languages["en"] / 2000 < 0.10
    russian_names = customers.filter(language="ru").values_list("name", flat=True)
    assert sum(any("а" <= c <= "я" for c in name) for name in russian_names) > 0.9 * len(
        russian_names
    )
    b2b = customers.filter(is_b2b=True)
    assert 0.04 < b2b.count() / 2000 < 0.12
    assert not b2b.filter(account__isnull=True).exists()
    assert not customers.filter(is_b2b=False, account__isnull=False).exists()
    assert set(b2b.values_list("segment", flat=True)) == {"small_business", "corporate"}
    assert Account.objects.filter(workspace=workspace).count() < b2b.count()
    assert all(
        email.rpartition("@")[2].endswith(".example") or "@example." in email
        for email in customers.exclude(email="").values_list("email", flat=True)
    )


def test_operational_events_are_a_few_percent_from_their_own_systems(
    demo_workspace: Workspace,
) -> None:
    rows = Interaction.objects.filter(workspace=demo_workspace).values_list("type", "source")
    types = collections.Counter(t for t, _ in rows)
    operational = types["dropped_call"] + types["late_delivery"] + types["failed_payment"]
    assert 0.01 < operational / 3000 < 0.10
    assert {s for t, s in rows if t == "dropped_call"} == {"network"}
    assert {s for t, s in rows if t == "failed_payment"} == {"billing"}
    calls = Interaction.objects.filter(workspace=demo_workspace, type="call")
    assert all("duration_s" in a for a in calls.values_list("attributes", flat=True))


def test_the_command_creates_the_workspace_and_refuses_to_run_twice() -> None:
    out = io.StringIO()
    call_command("demo", "--workspace", "demo", "--customers", "40", "--seed", "5",
                 "--no-progress", stdout=out)  # fmt: skip
    workspace = Workspace.objects.get(slug="demo")
    assert (workspace.time_zone, workspace.phone_region, workspace.default_language) == (
        "Europe/Chisinau", "MD", "ro",
    )  # fmt: skip
    assert Customer.objects.filter(workspace=workspace).count() == 40
    assert Interaction.objects.filter(workspace=workspace).count() == 400
    assert "customers: 40" in out.getvalue()
    assert "surveys: 3" in out.getvalue()
    assert f"invitations: {Invitation.objects.filter(workspace=workspace).count()}" in (
        out.getvalue()
    )
    assert "planted in the answers: better branches B04, B08" in out.getvalue()

    with pytest.raises(CommandError, match="already has data"):
        call_command("demo", "--workspace", "demo", "--customers", "40", "--seed", "6",
                     "--no-progress")  # fmt: skip
    assert Customer.objects.filter(workspace=workspace).count() == 40
    assert Branch.objects.filter(workspace=workspace).count() == 30


def test_the_command_leaves_other_workspaces_untouched(other_workspace: Workspace) -> None:
    Customer.objects.create(workspace=other_workspace, external_id="C0000001", name="Keep me")
    call_command("demo", "--workspace", "demo", "--customers", "30", "--seed", "1",
                 "--no-progress", stdout=io.StringIO())  # fmt: skip

    assert list(Customer.objects.filter(workspace=other_workspace).values_list("name")) == [
        ("Keep me",)
    ]
    assert not Interaction.objects.filter(workspace=other_workspace).exists()
    assert not Branch.objects.filter(workspace=other_workspace).exists()


def test_the_command_refuses_a_workspace_that_has_surveys(workspace: Workspace) -> None:
    save_survey(
        workspace, code="after-visit", name="Mine", kind="transactional",
        definition=default_definition("Acme"), rules={"touchpoints": ["store-visit"]}, via="cli",
    )  # fmt: skip
    with pytest.raises(CommandError, match="1 surveys"):
        call_command("demo", "--workspace", workspace.slug, "--customers", "10", "--no-progress")
    assert not Customer.objects.filter(workspace=workspace).exists()


def test_the_command_rejects_interactions_without_customers() -> None:
    with pytest.raises(CommandError, match="need customers"):
        call_command("demo", "--workspace", "demo", "--customers", "0", "--interactions", "5")
    assert not Workspace.objects.filter(slug="demo").exists()
