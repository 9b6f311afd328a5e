"""cxloop settings, read from environment variables with safe defaults.

Every variable is documented in README.md ("Configuration"). A wrong value stops start-up
with an ``ImproperlyConfigured`` error that names the variable.
"""

from __future__ import annotations

import os
import secrets
import zoneinfo
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CXLOOP_VAR_DIR", BASE_DIR / "var"))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str) -> str | None:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    if os.environ.get(name):
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc}") from None
    return None


def _development_secret_key() -> str:
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# The embedded development setup (no DATABASE_URL) runs with DEBUG on; a deployment that
# names its database runs with DEBUG off unless it says otherwise.
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
DEBUG = env_bool("DEBUG", default=not DATABASE_URL)

SECRET_KEY = env_secret("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    SECRET_KEY = _development_secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
if TIME_ZONE not in zoneinfo.available_timezones():
    raise ImproperlyConfigured(f"TIME_ZONE is not a known IANA time zone: {TIME_ZONE!r}")
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("ru", "Русский"), ("ro", "Română")]
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(
        f"LANGUAGE_CODE must be one of {', '.join(dict(LANGUAGES))}, got {LANGUAGE_CODE!r}"
    )
LOCALE_PATHS = [BASE_DIR / "cxloop" / "locale"]

INSTALLED_APPS = [
    "cxloop.core.apps.CxAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # serves Swagger UI from its own static files, never from a CDN
    "cxloop.core",
    "cxloop.accounts",
    "cxloop.organisation",
    "cxloop.customers",
    "cxloop.interactions",
    "cxloop.imports",
    "cxloop.surveys",
    "cxloop.delighted",
    "cxloop.webhooks",
    "cxloop.cases",
    "cxloop.analytics",
    "cxloop.text",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "cxloop.accounts.middleware.WorkspaceMiddleware",
]

ROOT_URLCONF = "cxloop.urls"
WSGI_APPLICATION = "cxloop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "cxloop" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cxloop.accounts.context_processors.workspace",
            ],
        },
    },
]


def _database(url: str) -> dict[str, Any]:
    if not url:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{VAR_DIR / 'cxloop.sqlite3'}"
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=60))
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            # WAL lets the web server read while an import writes; IMMEDIATE avoids
            # "database is locked" upgrades in the middle of a write transaction.
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;"
            ),
            "transaction_mode": "IMMEDIATE",
        }
    elif engine != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL must name a PostgreSQL or SQLite database, got engine {engine}"
        )
    return config


DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_ROOT = VAR_DIR / "media"
IMPORT_DIR = VAR_DIR / "imports"
# Rejected rows of an import (personal data) are kept this long for download, then deleted.
IMPORT_RETENTION_DAYS = env_int("IMPORT_RETENTION_DAYS", 30, minimum=1)

# The batch API takes up to 10,000 items; allow their JSON, refuse anything larger with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
API_MAX_BATCH_ITEMS = 10_000

# E-mail: SMTP when EMAIL_HOST is set, otherwise messages are printed to the console.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be true")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "cxloop <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ANYMAIL: dict[str, str] = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_")
}

# The cache holds rate-limit counters (bad survey tokens, public-link answers). Per process by
# default; CACHE_URL=redis://… shares them between web workers.
CACHE_URL = os.environ.get("CACHE_URL", "").strip()
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"CACHE_URL must be a redis:// URL, got {CACHE_URL!r}")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Charts (cxloop/core/charts.py) are kept in that cache by their numbers. On the analytics
# pages a chart whose numbers changed is shown as last drawn for up to CHART_MAX_AGE seconds,
# then redrawn by a thread while the old one is still shown (the tables beside it are always
# current); 0 draws every change at once.
CHART_MAX_AGE = float(env_int("CHART_MAX_AGE", 60, minimum=0))

# Survey delivery. The dispatcher's heartbeat (seconds) and the most messages per second
# each channel may send (providers and SMTP relays throttle; SMS costs money).
DISPATCH_INTERVAL = float(env_int("DISPATCH_INTERVAL", 2, minimum=1))
DELIVERY_RATES = {
    "email": env_int("DELIVERY_RATE_EMAIL", 500, minimum=1),
    "sms": env_int("DELIVERY_RATE_SMS", 20, minimum=1),
}
# SMS: "console" prints messages (the development default); "twilio" speaks Twilio's REST API
# (or any provider with the same protocol, at SMS_API_URL); "none" (the default when DEBUG is
# off) means no SMS: surveys fall back to e-mail and never print phone numbers anywhere.
SMS_BACKEND = os.environ.get("SMS_BACKEND", "console" if DEBUG else "none")
if SMS_BACKEND not in {"console", "twilio", "none"}:
    raise ImproperlyConfigured(f"SMS_BACKEND must be console, twilio or none, got {SMS_BACKEND!r}")
SMS_API_URL = os.environ.get("SMS_API_URL", "https://api.twilio.com").rstrip("/")
SMS_ACCOUNT_SID = os.environ.get("SMS_ACCOUNT_SID", "")
SMS_AUTH_TOKEN = env_secret("SMS_AUTH_TOKEN") or ""
SMS_FROM = os.environ.get("SMS_FROM", "")
SMS_TIMEOUT = env_int("SMS_TIMEOUT", 10, minimum=1)
if SMS_BACKEND == "twilio" and not (SMS_ACCOUNT_SID and SMS_AUTH_TOKEN and SMS_FROM):
    raise ImproperlyConfigured(
        "SMS_BACKEND=twilio needs SMS_ACCOUNT_SID, SMS_AUTH_TOKEN and SMS_FROM"
    )

# Celery: with no broker, tasks run in-process (eagerly) so the embedded setup needs nothing.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"surveys.send": {"queue": "delivery"}}
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = "UTC"
# Every periodic entry expires before the next run, so a backlog never runs it twice.
CELERY_BEAT_SCHEDULE = {
    "requeue-stuck-imports": {
        "task": "imports.requeue_stuck",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "survey-dispatch-tick": {
        "task": "surveys.tick",
        "schedule": float(DISPATCH_INTERVAL),
        "options": {"expires": max(1.0, DISPATCH_INTERVAL - 0.5)},
    },
    "delighted-tick": {
        "task": "delighted.tick",
        "schedule": float(DISPATCH_INTERVAL),
        "options": {"expires": max(1.0, DISPATCH_INTERVAL - 0.5)},
    },
    "cases-tick": {
        "task": "cases.tick",
        "schedule": float(DISPATCH_INTERVAL),
        "options": {"expires": max(1.0, DISPATCH_INTERVAL - 0.5)},
    },
    "analytics-refresh": {
        "task": "analytics.refresh",
        "schedule": float(DISPATCH_INTERVAL),
        "options": {"expires": max(1.0, DISPATCH_INTERVAL - 0.5)},
    },
    "webhooks-tick": {
        "task": "webhooks.tick",
        "schedule": float(DISPATCH_INTERVAL),
        "options": {"expires": max(1.0, DISPATCH_INTERVAL - 0.5)},
    },
    "text-tick": {
        "task": "text.tick",
        "schedule": float(DISPATCH_INTERVAL),
        "options": {"expires": max(1.0, DISPATCH_INTERVAL - 0.5)},
    },
    # Text models with enough new analysts' labels are retrained at night (docs/text-analytics.md).
    "text-retrain": {
        "task": "text.retrain",
        "schedule": crontab(minute=0, hour=3),
        "options": {"expires": 6 * 3600},
    },
    "flag-silent-accounts": {
        "task": "surveys.flag_silent_accounts",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    "purge-old-import-files": {
        "task": "imports.purge_old_files",
        "schedule": 3600.0,
        "options": {"expires": 3000},
    },
    # The weekly NPS digest (docs/digest.md): hourly, sending where it is Monday 07:00 or
    # later in the workspace's time zone (until Wednesday); once per reader and week.
    "analytics-weekly-digest": {
        "task": "analytics.weekly_digest",
        "schedule": crontab(minute=0),
        "options": {"expires": 3000},
    },
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {LOG_LEVEL!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
