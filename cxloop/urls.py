from django.contrib import admin
from django.urls import include, path

from cxloop.accounts import views as accounts_views
from cxloop.api import api
from cxloop.cases.urls import problem_urls
from cxloop.core import views as core_views

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("workspace/switch", accounts_views.switch_workspace, name="switch_workspace"),
    path("settings/api-keys", accounts_views.api_keys, name="api_keys"),
    path("settings/api-keys/<int:pk>/revoke", accounts_views.revoke_key, name="revoke_api_key"),
    path("settings/audit-log", accounts_views.audit_log, name="audit_log"),
    path("settings/people", accounts_views.people, name="people"),
    path("settings/people/<int:pk>", accounts_views.person, name="person"),
    path("settings/webhooks/", include("cxloop.webhooks.urls")),
    path("imports/", include("cxloop.imports.urls")),
    path("surveys/", include("cxloop.surveys.urls")),
    path("cases/", include("cxloop.cases.urls")),
    path("problems/", include(problem_urls)),
    path("analytics/", include("cxloop.analytics.urls")),
    path("comments/", include("cxloop.text.urls")),
    path("s/", include("cxloop.surveys.urls_public")),
    path("webhooks/", include("cxloop.surveys.urls_webhooks")),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("delighted/v1/", include("cxloop.delighted.urls")),
]
