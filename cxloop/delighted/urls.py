"""``/delighted/v1/…``: Delighted's REST API v1 paths, each with and without ``.json``."""

from collections.abc import Callable
from typing import Any

from django.urls import URLPattern, re_path

from . import views_autopilot, views_people, views_responses


def route(pattern: str, view: Callable[..., Any], name: str) -> URLPattern:
    return re_path(rf"^{pattern}(?:\.json)?/?$", view, name=f"delighted_{name}")


urlpatterns = [
    route(r"people", views_people.people, "people"),
    route(r"people/(?P<email>[^/]+)/survey_requests/pending", views_people.pending, "pending"),
    route(r"people/(?P<identifier>[^/]+?)", views_people.person_detail, "person"),
    route(r"unsubscribes", views_people.unsubscribes, "unsubscribes"),
    route(r"bounces", views_people.bounces, "bounces"),
    route(r"survey_responses", views_responses.survey_responses, "survey_responses"),
    route(r"survey_responses/(?P<pk>\d+)", views_responses.survey_response, "survey_response"),
    route(r"metrics", views_responses.metrics, "metrics"),
    route(r"autopilot/(?P<platform>email|sms)", views_autopilot.config, "autopilot"),
    route(
        r"autopilot/(?P<platform>email|sms)/memberships",
        views_autopilot.memberships,
        "autopilot_memberships",
    ),
]
