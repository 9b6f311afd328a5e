"""The respondent's pages (no login): /s/<token> and friends."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
