"""Rollups of NPS answers: score histograms per (survey, local day[, hour], dimension value).

A cell holds how many answers had each score 0..10 (``s0`` … ``s10``), so the promoter and
detractor thresholds of a survey are applied when reading and changing them needs no rebuild.
``kind`` says which single dimension the cell splits by (``all``: no split); ``entity_id`` is
the id of the branch, employee, product, channel or touchpoint (``None``: the response had
none), ``segment`` the customer's segment (kind ``segment`` only). Region, team and stage are
read through their branch, employee and touchpoint, so moving a branch to another region needs
no rebuild. The cells of a (survey, local day) are recomputed from the raw responses whenever
the day is marked in ``DirtyDay`` (``rollups.py``). Days are those of the workspace's time zone.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

# The dimension kinds of the cells, and those the hourly table keeps (not employee: too many).
DAILY_KINDS = ("all", "branch", "employee", "product", "channel", "touchpoint", "segment")
HOURLY_KINDS = ("all", "branch", "product", "channel", "touchpoint", "segment")
SCORES = tuple(range(11))


class Cell(models.Model):
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    survey = models.ForeignKey("surveys.Survey", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    kind = models.CharField(max_length=10)
    entity_id = models.BigIntegerField(null=True, blank=True)
    segment = models.CharField(max_length=64, blank=True)
    s0 = models.PositiveIntegerField(default=0)
    s1 = models.PositiveIntegerField(default=0)
    s2 = models.PositiveIntegerField(default=0)
    s3 = models.PositiveIntegerField(default=0)
    s4 = models.PositiveIntegerField(default=0)
    s5 = models.PositiveIntegerField(default=0)
    s6 = models.PositiveIntegerField(default=0)
    s7 = models.PositiveIntegerField(default=0)
    s8 = models.PositiveIntegerField(default=0)
    s9 = models.PositiveIntegerField(default=0)
    s10 = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.survey_id} {self.day} {self.kind} {self.entity_id or self.segment}"

    def histogram(self) -> tuple[int, ...]:
        return tuple(getattr(self, f"s{i}") for i in SCORES)


class DailyCell(Cell):
    class Meta:
        verbose_name = _("daily NPS cell")
        verbose_name_plural = _("daily NPS cells")
        indexes = [
            models.Index(fields=["survey", "kind", "day"], name="analytics_daily_survey"),
            models.Index(fields=["workspace", "kind", "day"], name="analytics_daily_ws"),
        ]


class MonthlyCell(Cell):
    """The daily cells of a calendar month summed (``day``: the month's first day, local): a
    year by employee reads 12 x 300 rows instead of 365 x 300. Recomputed from the daily cells
    whenever a day of the month is (``rollups._refresh_day``/``rebuild``)."""

    class Meta:
        verbose_name = _("monthly NPS cell")
        verbose_name_plural = _("monthly NPS cells")
        indexes = [
            models.Index(fields=["survey", "kind", "day"], name="analytics_monthly_survey"),
        ]


class HourlyCell(Cell):
    hour = models.PositiveSmallIntegerField()

    class Meta:
        verbose_name = _("hourly NPS cell")
        verbose_name_plural = _("hourly NPS cells")
        indexes = [
            models.Index(fields=["survey", "kind", "day"], name="analytics_hourly_survey"),
            models.Index(fields=["workspace", "kind", "day"], name="analytics_hourly_ws"),
        ]


# The dimension kinds of the reason cells: the pain map's filters (region reads its branches).
REASON_KINDS = ("all", "branch", "employee", "product")


class ReasonCell(models.Model):
    """The pain map's and key drivers' rollup of a (survey, local day[, branch/employee/product]),
    read instead of every answer (``reasons.py``). Two sorts of rows:

    * a **respondents** row (``score`` null): the day's scored answers of the kind and entity,
      ``histogram`` their count per score 0..10, ``anonymous`` those without a customer and
      ``customers`` the ids of the others (``reasons.pack``), for distinct respondents;
    * **token** rows: the answers with one ``score`` and the same reason ``tokens``, how many
      (``n``), how many anonymous, which customers. Kind ``all`` has them for every score
      (key drivers); the other kinds only for the survey's detractor scores when built (a
      change of thresholds marks the survey's days dirty). ``tokens`` is the sorted,
      newline-joined set of ``o<TAB>question<TAB>value`` (a value given to a single/multiple
      choice question; the reader applies the survey's current definition), ``c<TAB>code`` (a
      reason code on a case opened for the answer) and ``t<TAB>code`` (a reason code of the
      answer's comment, ``text.CommentReason``).

    Recomputed by the heartbeat for the days in ``ReasonDirtyDay``; readers take those days
    from the raw answers meanwhile."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    survey = models.ForeignKey("surveys.Survey", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    kind = models.CharField(max_length=10)
    entity_id = models.BigIntegerField(null=True, blank=True)
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    tokens = models.TextField(blank=True)
    n = models.PositiveIntegerField(default=0)
    anonymous = models.PositiveIntegerField(default=0)
    customers = models.BinaryField(default=b"")
    histogram = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = _("reason cell")
        verbose_name_plural = _("reason cells")
        indexes = [
            models.Index(fields=["survey", "kind", "day"], name="analytics_reason_survey"),
            models.Index(
                fields=["survey", "kind", "entity_id", "day"], name="analytics_reason_entity"
            ),
            models.Index(fields=["workspace", "day"], name="analytics_reason_ws"),
        ]

    def __str__(self) -> str:
        return f"{self.survey_id} {self.day} {self.kind} {self.entity_id} {self.score}"


class ReasonDirtyDay(models.Model):
    """A (survey, local day) whose reason cells must be recomputed (marked with ``DirtyDay``,
    see there); recomputed by the heartbeat only, not by a request (a day's reason cells cost
    a pass over its answers in Python)."""

    workspace_id = models.BigIntegerField()
    survey_id = models.BigIntegerField()
    day = models.DateField()
    token = models.CharField(max_length=32)
    marked_at = models.DateTimeField()

    class Meta:
        verbose_name = _("dirty reason day")
        verbose_name_plural = _("dirty reason days")
        constraints = [
            models.UniqueConstraint(fields=["survey_id", "day"], name="analytics_rdirty_unique")
        ]
        indexes = [models.Index(fields=["workspace_id", "day"], name="analytics_rdirty_ws")]

    def __str__(self) -> str:
        return f"{self.survey_id} {self.day}"


class ReasonWatermark(models.Model):
    """Comments coded (``text.Comment.analysed_at``) up to ``checked_at`` have had their days
    marked dirty: the model coder bulk-creates ``CommentReason`` rows, which sends no signal,
    so the heartbeat marks the days of comments analysed since (``reasons.reconcile``)."""

    checked_at = models.DateTimeField()

    class Meta:
        verbose_name = _("reason watermark")
        verbose_name_plural = _("reason watermarks")

    def __str__(self) -> str:
        return str(self.checked_at)


class DirtyDay(models.Model):
    """A (survey, local day) whose cells must be recomputed. Plain ids, no foreign keys: a row
    is written while its survey may be being deleted (cascades send ``post_delete``).
    ``token`` changes at every mark, so a refresh that read the responses before a newer change
    leaves the mark in place."""

    workspace_id = models.BigIntegerField()
    survey_id = models.BigIntegerField()
    day = models.DateField()
    token = models.CharField(max_length=32)
    marked_at = models.DateTimeField()

    class Meta:
        verbose_name = _("dirty rollup day")
        verbose_name_plural = _("dirty rollup days")
        constraints = [
            models.UniqueConstraint(fields=["survey_id", "day"], name="analytics_dirty_unique")
        ]
        indexes = [models.Index(fields=["workspace_id", "day"], name="analytics_dirty_ws")]

    def __str__(self) -> str:
        return f"{self.survey_id} {self.day}"


class RollupState(models.Model):
    """The time zone the cells of a workspace were built in; another one means a rebuild."""

    workspace = models.OneToOneField(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="+"
    )
    time_zone = models.CharField(max_length=64)
    built_at = models.DateTimeField()

    class Meta:
        verbose_name = _("rollup state")
        verbose_name_plural = _("rollup states")

    def __str__(self) -> str:
        return f"{self.workspace_id} {self.time_zone}"


class NpsThresholds(models.Model):
    """A survey's own promoter and detractor thresholds (absent: 9-10 promote, 0-6 detract)."""

    survey = models.OneToOneField("surveys.Survey", on_delete=models.CASCADE, related_name="+")
    promoter_min = models.PositiveSmallIntegerField(default=9)
    detractor_max = models.PositiveSmallIntegerField(default=6)

    class Meta:
        verbose_name = _("NPS thresholds")
        verbose_name_plural = _("NPS thresholds")

    def __str__(self) -> str:
        return f"{self.survey_id}: {self.promoter_min}/{self.detractor_max}"


class Initiative(models.Model):
    """A named change (a new queue system, a price change, a training) that took effect on
    ``date`` (a local day of the workspace) where its scope says: the branches and products it
    names, none meaning everywhere, and the NPS survey to judge it by (``None``: all of them).
    Its before/after numbers are computed when read (``initiatives.py``), never stored."""

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    date = models.DateField(_("date it took effect"))
    branches = models.ManyToManyField(
        "organisation.Branch", blank=True, related_name="+", verbose_name=_("branches")
    )
    products = models.ManyToManyField(
        "organisation.Product", blank=True, related_name="+", verbose_name=_("products")
    )
    survey = models.ForeignKey(
        "surveys.Survey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("survey"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("initiative")
        verbose_name_plural = _("initiatives")
        ordering = ["-date", "-pk"]
        indexes = [models.Index(fields=["workspace", "date"], name="analytics_initiative_date")]

    def __str__(self) -> str:
        return self.name
