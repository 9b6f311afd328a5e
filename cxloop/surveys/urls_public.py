"""The respondent's pages (no login), included at ``s/``: see ``respondent`` and docs/respondent.md.

The fixed prefixes (``p/``, ``preview/``, ``brand/``) come first; a token never matches them
(tokens are at least 16 characters and have no slash).
"""

from django.urls import path, re_path

from . import respondent

urlpatterns = [
    path("p/<str:public_code>", respondent.public, name="respond_public"),
    path("p/<str:public_code>/qr.svg", respondent.public_qr, name="respond_public_qr"),
    path("preview/<str:survey_code>", respondent.preview, name="respond_preview"),
    re_path(
        r"^brand/(?P<colour>[0-9a-fA-F]{6})\.css$",
        respondent.brand_css,
        name="respond_brand_css",
    ),
    path("<str:token>", respondent.respond, name="respond"),
    path("<str:token>/thanks", respondent.thanks, name="respond_thanks"),
    path("<str:token>/o.gif", respondent.open_pixel, name="respond_open"),
    path("<str:token>/unsubscribe", respondent.unsubscribe, name="respond_unsubscribe"),
]
