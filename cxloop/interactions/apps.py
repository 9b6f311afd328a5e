from django.apps import AppConfig


class InteractionsConfig(AppConfig):
    name = "cxloop.interactions"
    label = "interactions"
