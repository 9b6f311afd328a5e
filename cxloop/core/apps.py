from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    default = True
    name = "cxloop.core"
    label = "core"
    verbose_name = "Core"


class CxAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "cxloop.core.admin.CxAdminSite"
