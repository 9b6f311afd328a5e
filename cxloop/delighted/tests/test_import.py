"""Importing Delighted's CSV exports: people and responses, re-runs, bad rows by line."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from cxloop.accounts.models import AuditLog, Workspace
from cxloop.customers.models import Customer
from cxloop.delighted.importing import import_delighted, parse_time, person_external_id
from cxloop.delighted.models import ResponseMeta
from cxloop.imports.reader import CsvError
from cxloop.surveys.models import Response, Survey, SurveyKind
from cxloop.surveys.tests.factories import make_customer, make_survey

pytestmark = pytest.mark.django_db

ANSWERED = dt.datetime(2025, 3, 5, 14, 22, 31, tzinfo=dt.UTC)

# As Delighted's "Download responses" wrote them: its fields, then one column per property.
RESPONSES = [
    ["Response ID", "Date (UTC)", "Response Timestamp", "Score", "Comment", "Name", "Email",
     "Phone", "Survey Type", "Tags", "Notes", "Customer ID", "Plan", "Delighted Source"],
    ["101", "2025-03-05 14:22:31", str(int(ANSWERED.timestamp())), "9", "Fast,\nfriendly",
     "Ana Rusu", "ana@example.com", "", "nps", "billing, support", "Called back", "CRM-1", "Pro",
     "Email"],
    ["102", "2025-03-06 10:00:00", "", "3", "", "Ion Popescu", "ION@Example.com", "+37369111222",
     "nps", "", "", "CRM-2", "Basic", "Email"],
    ["103", "2025-03-07 10:00:00", "", "11", "Too high", "Max", "max@example.com", "", "nps", "",
     "", "", "", ""],
    ["104", "2025-03-08 10:00:00", "", "7", "", "Nobody", "", "", "nps", "", "", "", "", ""],
]  # fmt: skip

PEOPLE = [
    ["Email", "Name", "Phone Number", "Created At", "Company", "Plan"],
    ["ana@example.com", "Ana Rusu", "+37369111222", "2024-01-02 10:00:00", "Acme SRL", "Pro"],
    ["ION@example.com", "Ion Popescu", "", "2024-01-03 10:00:00", "", "Basic"],
    ["not-an-email", "Bad Row", "", "2024-01-04 10:00:00", "", ""],
    ["", "Phone Only", "+37379222333", "2024-01-05 10:00:00", "", ""],
]


def write(path: Path, rows: list[list[str]], encoding: str = "utf-8", delimiter: str = ",") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


@pytest.fixture
def survey(workspace: Workspace) -> Survey:
    return make_survey(workspace, "after-visit")


# --- responses ------------------------------------------------------------------------------


def test_responses_export_imports_with_person_properties_tags_and_notes(
    workspace: Workspace, survey: Survey, tmp_path: Path
) -> None:
    ion = make_customer(workspace, "CRM-ION", email="ion@example.com", phone="", name="")
    path = write(tmp_path / "responses.csv", RESPONSES)

    report = import_delighted(workspace, "responses", path)

    assert report.rows == 4
    assert (report.result.accepted, report.result.duplicates, report.result.rejected) == (2, 0, 2)
    # Row 101's comment spans two physical lines, so 103 starts on line 5, 104 on line 6.
    assert [e["line"] for e in report.sample_errors] == [5, 6]
    assert "score" in report.sample_errors[0]["errors"]
    assert "Survey Type" in report.ignored_columns

    first = Response.objects.get(workspace=workspace, external_id="delighted-101")
    assert (first.survey, first.score, first.comment) == (survey, 9, "Fast,\nfriendly")
    assert first.answered_at == ANSWERED
    assert first.customer is not None and first.customer.email == "ana@example.com"
    assert first.customer.name == "Ana Rusu"
    meta = ResponseMeta.objects.get(response=first)
    assert meta.tags == ["billing", "support"]
    assert meta.notes == [{"text": "Called back"}]
    assert meta.person_properties == {"Customer ID": "CRM-1", "Plan": "Pro", "Delighted Source": "Email"}  # fmt: skip

    second = Response.objects.get(workspace=workspace, external_id="delighted-102")
    assert second.customer_id == ion.pk  # found by e-mail, whatever its case
    assert second.answered_at == dt.datetime(2025, 3, 6, 10, 0, tzinfo=dt.UTC)
    ion.refresh_from_db()
    assert ion.external_id == "CRM-ION"
    assert (ion.phone, ion.name) == ("+37369111222", "Ion Popescu")  # blanks filled in
    assert not Response.objects.filter(external_id__in=["delighted-103", "delighted-104"]).exists()


def test_responses_import_does_not_overwrite_what_the_crm_set(
    workspace: Workspace, survey: Survey, tmp_path: Path
) -> None:
    ion = make_customer(workspace, "CRM-ION", email="ion@example.com", name="Ion P. (CRM)")
    path = write(tmp_path / "responses.csv", RESPONSES[:1] + RESPONSES[2:3])

    import_delighted(workspace, "responses", path)

    ion.refresh_from_db()
    assert ion.name == "Ion P. (CRM)"
    assert ion.phone == "+37369123456"  # the factory's, not the export's


def test_rerunning_a_responses_export_changes_nothing(
    workspace: Workspace, survey: Survey, tmp_path: Path
) -> None:
    path = write(tmp_path / "responses.csv", RESPONSES)
    import_delighted(workspace, "responses", path)
    responses = list(Response.objects.order_by("pk").values())
    metas = list(ResponseMeta.objects.order_by("pk").values())
    customers = list(Customer.objects.order_by("pk").values_list("pk", "external_id", "name"))

    again = import_delighted(workspace, "responses", path)

    assert (again.result.accepted, again.result.duplicates, again.result.rejected) == (0, 2, 2)
    assert list(Response.objects.order_by("pk").values()) == responses
    assert list(ResponseMeta.objects.order_by("pk").values()) == metas
    assert list(Customer.objects.order_by("pk").values_list("pk", "external_id", "name")) == customers  # fmt: skip


def test_the_command_prints_the_row_report(
    workspace: Workspace, survey: Survey, tmp_path: Path
) -> None:
    yearly = make_survey(workspace, "yearly", kind=SurveyKind.RELATIONSHIP)
    # Excel's flavour: a BOM, semicolons, lower-case headers.
    rows = [[h.lower() for h in RESPONSES[0]], *RESPONSES[1:]]
    path = write(tmp_path / "responses.csv", rows, encoding="utf-8-sig", delimiter=";")
    out = io.StringIO()

    call_command(
        "import_delighted", "responses", str(path), "--workspace", workspace.slug,
        "--survey", "yearly", "--no-progress", stdout=out,
    )  # fmt: skip

    text = out.getvalue()
    assert "4 rows: 2 accepted, 0 duplicates, 2 rejected" in text
    assert "delimiter ';'" in text
    assert "line 5: score: must be from 0 to 10" in text
    assert "line 6: __all__: no e-mail, phone number or person id" in text
    assert f"Rejected rows written to {tmp_path / 'responses.rejects.csv'}" in text
    with (tmp_path / "responses.rejects.csv").open(encoding="utf-8", newline="") as f:
        rejected = list(csv.reader(f, delimiter=";"))
    assert rejected[0][:3] == ["line", "errors", "response id"]
    assert [(r[0], r[2]) for r in rejected[1:]] == [("5", "103"), ("6", "104")]
    assert rejected[1][2:] == RESPONSES[3]  # the row as it was, to fix and import again
    assert set(Response.objects.values_list("survey_id", flat=True)) == {yearly.pk}
    assert AuditLog.objects.filter(action="import.completed", workspace=workspace).exists()


def test_unknown_survey_or_wrong_file_fails_as_a_whole(
    workspace: Workspace, survey: Survey, tmp_path: Path
) -> None:
    responses = write(tmp_path / "responses.csv", RESPONSES)
    people = write(tmp_path / "people.csv", PEOPLE)

    with pytest.raises(CommandError, match="no survey with code 'nope'"):
        call_command(
            "import_delighted", "responses", str(responses), "--workspace", workspace.slug,
            "--survey", "nope", "--no-progress",
        )  # fmt: skip
    with pytest.raises(CsvError, match="Response ID, Score"):
        import_delighted(workspace, "responses", people)
    assert not Response.objects.exists()
    assert not Customer.objects.exists()


def test_unix_timestamp_alone_dates_the_response(
    workspace: Workspace, survey: Survey, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "r.csv",
        [["Response ID", "Response Timestamp", "Score", "Email"],
         ["9", str(int(ANSWERED.timestamp())), "10", "a@example.com"]],
    )  # fmt: skip

    report = import_delighted(workspace, "responses", path)

    assert report.result.accepted == 1
    assert Response.objects.get().answered_at == ANSWERED


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1741184551", dt.datetime(2025, 3, 5, 14, 22, 31, tzinfo=dt.UTC)),
        ("2025-03-05 14:22:31", dt.datetime(2025, 3, 5, 14, 22, 31, tzinfo=dt.UTC)),
        ("2025-03-05T14:22:31Z", dt.datetime(2025, 3, 5, 14, 22, 31, tzinfo=dt.UTC)),
        ("2025-03-05 16:22:31+02:00", dt.datetime(2025, 3, 5, 14, 22, 31, tzinfo=dt.UTC)),
        ("2025-03-05 14:22:31 UTC", dt.datetime(2025, 3, 5, 14, 22, 31, tzinfo=dt.UTC)),
        ("03/05/2025 14:22", dt.datetime(2025, 3, 5, 14, 22, tzinfo=dt.UTC)),
    ],
)
def test_dates_as_delighted_wrote_them(raw: str, expected: dt.datetime) -> None:
    assert parse_time(raw) == expected


def test_a_date_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="is not a date"):
        parse_time("yesterday")


# --- people ---------------------------------------------------------------------------------


def test_people_export_upserts_customers_with_their_properties(
    workspace: Workspace, tmp_path: Path
) -> None:
    ion = make_customer(workspace, "CRM-ION", email="ion@example.com", name="")
    path = write(tmp_path / "people.csv", PEOPLE)

    report = import_delighted(workspace, "people", path)

    r = report.result
    assert (r.created, r.updated, r.unchanged, r.rejected) == (2, 1, 0, 1)
    assert report.summary() == "4 rows: 2 created, 1 updated, 0 unchanged, 1 rejected"
    assert report.sample_errors == [
        {"line": 4, "errors": {"email": ["'not-an-email' is not a valid e-mail address"]}}
    ]
    assert "Created At" in report.ignored_columns
    ana = Customer.objects.get(workspace=workspace, email="ana@example.com")
    assert ana.external_id == person_external_id("ana@example.com", None) == "ana@example.com"
    assert (ana.name, ana.phone) == ("Ana Rusu", "+37369111222")
    assert ana.attributes == {"Company": "Acme SRL", "Plan": "Pro"}
    ion.refresh_from_db()
    assert (ion.external_id, ion.name, ion.attributes) == ("CRM-ION", "Ion Popescu", {"Plan": "Basic"})  # fmt: skip
    by_phone = Customer.objects.get(workspace=workspace, phone="+37379222333")
    assert by_phone.external_id == "tel:37379222333"
    assert Customer.objects.filter(workspace=workspace).count() == 3


def test_rerunning_a_people_export_changes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path / "people.csv", PEOPLE)
    import_delighted(workspace, "people", path)
    before = list(Customer.objects.order_by("pk").values())

    again = import_delighted(workspace, "people", path)

    r = again.result
    assert (r.created, r.updated, r.unchanged, r.rejected) == (0, 0, 3, 1)
    assert list(Customer.objects.order_by("pk").values()) == before


def test_people_then_responses_meet_on_the_same_customers(
    workspace: Workspace, survey: Survey, tmp_path: Path
) -> None:
    import_delighted(workspace, "people", write(tmp_path / "p.csv", PEOPLE))
    customers = Customer.objects.count()

    import_delighted(workspace, "responses", write(tmp_path / "r.csv", RESPONSES))

    assert Customer.objects.count() == customers  # Ana and Ion were already there
    ana = Customer.objects.get(email="ana@example.com")
    assert Response.objects.get(external_id="delighted-101").customer_id == ana.pk


def test_an_email_that_is_not_a_code_gets_a_stable_key() -> None:
    first = person_external_id("Jony+Test@Example.com", None)
    assert first == person_external_id("jony+test@example.com", "+37369111222")
    assert first.startswith("delighted:") and "jony" not in first
