"""The comment pages: /comments/ (docs/comment-explorer.md)."""

from django.urls import path

from . import views

app_name = "text"
urlpatterns = [
    path("", views.explorer, name="explorer"),
    path("<int:pk>/label", views.label, name="label"),
    path("<int:pk>/confirm", views.confirm, name="confirm"),
    path("review", views.review, name="review"),
    path("topics", views.topics_page, name="topics"),
    path("topics/reason", views.topic_reason, name="topic_reason"),
    path("models", views.models_page, name="models"),
    path("models/train", views.train, name="train"),
    path("models/<int:pk>/activate", views.activate, name="activate"),
]
