"""The dashboards: /analytics/ (docs/dashboards.md)."""

from django.urls import path

from . import views, views_more, views_plan

app_name = "analytics"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("drivers", views_plan.drivers_page, name="drivers"),
    path("planner", views_plan.planner_page, name="planner"),
    path("pain", views_more.pain, name="pain"),
    path("competitors", views_more.competitors, name="competitors"),
]
