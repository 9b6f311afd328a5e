from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DelightedConfig(AppConfig):
    name = "cxloop.delighted"
    label = "delighted"
    verbose_name = _("Delighted compatibility")

    def ready(self) -> None:
        from . import webhooks  # noqa: F401  (connects to the surveys' signals)
