"""The company's shape: regions → branches → teams → employees, products, channels, journeys."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from cxloop.core.models import WorkspaceScoped


class Coded(WorkspaceScoped):
    """A reference row that integrators name by its ``code`` (unique in the workspace)."""

    code = models.CharField(max_length=64)
    name = models.CharField(max_length=200)

    class Meta:
        abstract = True
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


def unique_code(model: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(fields=["workspace", "code"], name=f"{model}_code_unique")


class Region(Coded):
    class Meta(Coded.Meta):
        verbose_name = _("region")
        verbose_name_plural = _("regions")
        constraints = [unique_code("region")]


class Branch(Coded):
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="branches")
    city = models.CharField(max_length=100, blank=True)
    time_zone = models.CharField(max_length=64, blank=True, help_text=_("Blank: the workspace's."))
    manager = models.ForeignKey(
        "Employee",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_branches",
    )

    class Meta(Coded.Meta):
        verbose_name = _("branch")
        verbose_name_plural = _("branches")
        constraints = [unique_code("branch")]


class Team(Coded):
    branch = models.ForeignKey(Branch, on_delete=models.PROTECT, related_name="teams")

    class Meta(Coded.Meta):
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        constraints = [unique_code("team")]


class Employee(Coded):
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="employees"
    )
    branch = models.ForeignKey(
        Branch, null=True, blank=True, on_delete=models.SET_NULL, related_name="employees"
    )
    supervisor = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    title = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    # The cxloop login of this employee, when they have one (supervisors see their teams).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_active = models.BooleanField(default=True)

    class Meta(Coded.Meta):
        verbose_name = _("employee")
        verbose_name_plural = _("employees")
        constraints = [unique_code("employee")]


class Product(Coded):
    category = models.CharField(max_length=100, blank=True)

    class Meta(Coded.Meta):
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [unique_code("product")]


class Channel(Coded):
    """Where an interaction happens: store, call centre, web, app, courier…"""

    class Meta(Coded.Meta):
        verbose_name = _("channel")
        verbose_name_plural = _("channels")
        constraints = [unique_code("channel")]


class Journey(Coded):
    class Meta(Coded.Meta):
        verbose_name = _("journey")
        verbose_name_plural = _("journeys")
        constraints = [unique_code("journey")]


class Stage(Coded):
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="stages")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta(Coded.Meta):
        verbose_name = _("stage")
        verbose_name_plural = _("stages")
        ordering = ["journey", "position"]
        constraints = [unique_code("stage")]


class Touchpoint(Coded):
    stage = models.ForeignKey(Stage, on_delete=models.CASCADE, related_name="touchpoints")
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="touchpoints"
    )

    class Meta(Coded.Meta):
        verbose_name = _("touchpoint")
        verbose_name_plural = _("touchpoints")
        constraints = [unique_code("touchpoint")]


class Placed(models.Model):
    """Where an experience happened: the references an interaction carries and its invitation
    and response copy, so that every report can group by them without a join."""

    branch = models.ForeignKey(
        "organisation.Branch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    employee = models.ForeignKey(
        "organisation.Employee", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    product = models.ForeignKey(
        "organisation.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(
        "organisation.Channel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    touchpoint = models.ForeignKey(
        "organisation.Touchpoint",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        abstract = True
