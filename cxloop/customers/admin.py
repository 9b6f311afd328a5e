from django.contrib import admin

from cxloop.core.admin import WorkspaceScopedAdmin

from .models import Account


@admin.register(Account)
class AccountAdmin(WorkspaceScopedAdmin):
    list_display = ["external_id", "name", "workspace"]
    search_fields = ["external_id", "name"]
