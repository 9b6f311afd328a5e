from django.contrib import admin

from cxloop.core.admin import WorkspaceScopedAdmin

from .models import AlertRule, Case, CaseEvent, CaseSettings, Holiday, Problem, ReasonCode


@admin.register(ReasonCode)
class ReasonCodeAdmin(WorkspaceScopedAdmin):
    list_display = ("code", "category", "is_active", "workspace")
    list_filter = ("workspace", "is_active")


@admin.register(AlertRule)
class AlertRuleAdmin(WorkspaceScopedAdmin):
    list_display = ("name", "survey", "score_min", "score_max", "priority", "is_active")
    list_filter = ("workspace",)


@admin.register(CaseSettings)
class CaseSettingsAdmin(WorkspaceScopedAdmin):
    list_display = ("workspace", "sla_mode", "sla_hours", "day_start", "day_end")


@admin.register(Holiday)
class HolidayAdmin(WorkspaceScopedAdmin):
    list_display = ("date", "name", "branch", "workspace")
    list_filter = ("workspace",)


class EventInline(admin.TabularInline):
    model = CaseEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "via", "from_assignee", "to_assignee", "result", "note")
    readonly_fields = fields


@admin.register(Case)
class CaseAdmin(WorkspaceScopedAdmin):
    # The customer's answers and contact details are read on the case page, not here.
    list_display = ("pk", "status", "priority", "assignee", "due_at", "breached", "workspace")
    list_filter = ("workspace", "status", "breached")
    raw_id_fields = ("response", "customer", "at_risk", "follow_up")
    readonly_fields = ("response", "customer", "at_risk", "opened_at")
    inlines = [EventInline]


@admin.register(Problem)
class ProblemAdmin(WorkspaceScopedAdmin):
    list_display = ("title", "status", "owner", "deadline", "workspace")
    list_filter = ("workspace", "status")
