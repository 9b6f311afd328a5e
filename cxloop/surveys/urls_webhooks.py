"""Provider webhooks (no login, no CSRF; each authenticates its caller).

* ``anymail/<esp>/tracking/`` — e-mail delivery events from any provider anymail supports
  (HTTP Basic auth with ``ANYMAIL_WEBHOOK_SECRET``, plus the provider's own signature where
  it has one); they arrive in ``tracking.on_tracking`` through anymail's signal.
* ``sms/twilio/status`` — Twilio's StatusCallback, signed with ``X-Twilio-Signature``.
"""

from django.urls import URLPattern, URLResolver, include, path

from . import tracking

urlpatterns: list[URLPattern | URLResolver] = [
    path("anymail/", include("anymail.urls")),
    path("sms/twilio/status", tracking.twilio_status, name="sms_twilio_status"),
]
