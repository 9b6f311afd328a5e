from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CasesConfig(AppConfig):
    name = "cxloop.cases"
    label = "cases"
    verbose_name = _("Closed loop")

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (opens cases when responses are saved)
