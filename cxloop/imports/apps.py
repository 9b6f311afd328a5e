from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "cxloop.imports"
    label = "imports"
    verbose_name = "CSV imports"
