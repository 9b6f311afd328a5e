from django.apps import AppConfig


class OrganisationConfig(AppConfig):
    name = "cxloop.organisation"
    label = "organisation"
