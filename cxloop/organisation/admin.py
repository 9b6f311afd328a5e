from django.contrib import admin

from cxloop.core.admin import WorkspaceScopedAdmin

from .models import Branch, Channel, Employee, Journey, Product, Region, Stage, Team, Touchpoint


class CodedAdmin(WorkspaceScopedAdmin):
    list_display = ["code", "name", "workspace"]
    search_fields = ["code", "name"]
    list_filter = ["workspace"]


@admin.register(Region, Product, Channel, Journey)
class SimpleAdmin(CodedAdmin):
    pass


@admin.register(Branch)
class BranchAdmin(CodedAdmin):
    list_display = ["code", "name", "region", "city", "manager", "workspace"]
    list_select_related = ["region", "manager", "workspace"]
    autocomplete_fields = ["manager"]


@admin.register(Team)
class TeamAdmin(CodedAdmin):
    list_display = ["code", "name", "branch", "workspace"]
    list_select_related = ["branch", "workspace"]


@admin.register(Employee)
class EmployeeAdmin(CodedAdmin):
    list_display = ["code", "name", "title", "team", "supervisor", "is_active", "workspace"]
    list_select_related = ["team", "supervisor", "workspace"]
    list_filter = ["workspace", "is_active", "title"]
    autocomplete_fields = ["supervisor", "team", "branch"]


@admin.register(Stage)
class StageAdmin(CodedAdmin):
    list_display = ["code", "name", "journey", "position", "workspace"]


@admin.register(Touchpoint)
class TouchpointAdmin(CodedAdmin):
    list_display = ["code", "name", "stage", "channel", "workspace"]
    list_select_related = ["stage", "channel", "workspace"]
