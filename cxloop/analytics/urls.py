"""The dashboards: /analytics/ (docs/dashboards.md)."""

from django.urls import path

from . import views, views_initiatives, views_more, views_plan, views_report

app_name = "analytics"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("drivers", views_plan.drivers_page, name="drivers"),
    path("planner", views_plan.planner_page, name="planner"),
    path("pain", views_more.pain, name="pain"),
    path("competitors", views_more.competitors, name="competitors"),
    path("initiatives", views_initiatives.initiatives_page, name="initiatives"),
    path("initiatives/<int:pk>", views_initiatives.initiative_page, name="initiative"),
    path("report.pdf", views_report.report_pdf, name="report_pdf"),
]
