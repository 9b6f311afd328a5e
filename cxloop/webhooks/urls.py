"""Mounted at ``settings/webhooks/`` (``settings/webhooks`` redirects there)."""

from django.urls import path

from . import views

app_name = "webhooks"
urlpatterns = [
    path("", views.endpoints, name="list"),
    path("<int:pk>", views.detail, name="detail"),
    path("<int:pk>/rotate-secret", views.rotate, name="rotate"),
    path("<int:pk>/active", views.active, name="active"),
    path("<int:pk>/test", views.test_event, name="test"),
]
