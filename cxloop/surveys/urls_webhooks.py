"""Provider webhooks: anymail's tracking endpoints and the SMS provider's status callbacks."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
