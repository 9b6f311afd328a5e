"""cxloop: open-source Customer Experience Management built around the Net Promoter System."""

from .celery import app as celery_app

__all__ = ["celery_app"]
