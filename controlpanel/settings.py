"""Django settings for Restorable.

Everything comes from the environment through the strict helpers in
controlpanel.env; with nothing set the panel runs on embedded defaults:
SQLite metadata, a filesystem broker and keys generated into the data dir.
The README's configuration table lists every variable.
"""

import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from controlpanel.env import env_bool, env_choice, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("RESTORABLE_DATA_DIR") or BASE_DIR / "var").resolve()


def _directory(path: Path, variable: str = "RESTORABLE_DATA_DIR") -> Path:
    """Make a directory the panel writes to; one that cannot be made stops the start naming its variable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"{variable} {str(path)!r} cannot be created: {exc.strerror or exc}") from None
    return path


def _generated_once(file_name: str, make) -> str:
    """A key kept in the data dir: made on first start, then read back (mode 600)."""
    path = _directory(DATA_DIR) / file_name
    try:
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(make())
        return path.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"RESTORABLE_DATA_DIR: cannot keep {file_name} in it: {exc.strerror or exc}"
        ) from None


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY") or _generated_once(
    "django-secret-key", lambda: secrets.token_urlsafe(50)
)
# Keys for secrets at rest, newest first: rotate by prepending a new key.
SECRETS_KEYS = env_list("RESTORABLE_SECRETS_KEYS", []) or [
    env_secret("RESTORABLE_SECRETS_KEY")
    or _generated_once("secrets-key", lambda: Fernet.generate_key().decode())
]
for _key in SECRETS_KEYS:
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "RESTORABLE_SECRETS_KEY(S) must be Fernet keys (32 url-safe base64 bytes); "
            "make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from None

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

HTTPS = env_bool("RESTORABLE_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("RESTORABLE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("RESTORABLE_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    "django_celery_beat",
    "controlpanel",
    "backups",
    "drills",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless its view says otherwise (login, health).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "controlpanel.site.urls"
# Widget templates may live in templates/ (the write-only secret input).
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"
WSGI_APPLICATION = "controlpanel.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database_from_url() -> dj_database_url.DBConfig:
    url = env_secret("DATABASE_URL")  # or DATABASE_URL_FILE: the URL holds a password
    if not url:
        url = f"sqlite:///{_directory(DATA_DIR) / 'restorable.sqlite3'}"
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except (ValueError, dj_database_url.UnknownSchemeError) as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Web, worker and beat share one file: WAL lets readers run beside a
        # writer, IMMEDIATE takes the write lock up front instead of failing late.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    return config


DATABASES = {"default": _database_from_url()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("RESTORABLE_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = _directory(DATA_DIR / "static")  # whitenoise warns at every start when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, compressed files once collectstatic has run (make run, the
        # image); plain names before that (tests, a bare checkout).
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG and ((STATIC_ROOT / "staticfiles.json").exists() or "collectstatic" in sys.argv)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Without collectstatic (tests, runserver) whitenoise serves from the finders.
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

# --- Celery -----------------------------------------------------------------

BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://localhost/"
if CELERY_BROKER_URL == "filesystem://":
    # The same broker; without a host kombu warns at every start. Celery reads
    # CELERY_BROKER_URL from the environment before its settings, so set it there too.
    CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"] = "filesystem://localhost/"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        _directory(BROKER_DIR / _sub)  # kombu's filesystem transport does not make its folders
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
elif not CELERY_BROKER_URL.startswith(("redis://", "rediss://", "amqp://", "sentinel://")):
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL must be redis://, rediss://, sentinel://, amqp:// or filesystem://, "
        f"not {CELERY_BROKER_URL.split('://')[0]!r}"
    )
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_IGNORE_RESULT = True  # run state lives in the run rows, not a result backend
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = "dumps"
CELERY_TASK_ROUTES = {
    "backups.tasks.*": {"queue": "dumps"},
    "drills.tasks.*": {"queue": "drills"},
    "controlpanel.tasks.*": {"queue": "dumps"},
}
CELERY_TASK_TIME_LIMIT = env_int("RESTORABLE_TASK_TIME_LIMIT", 6 * 3600, minimum=60)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Running jobs touch their heartbeat this often; the reaper fails a job whose
# heartbeat is older than RESTORABLE_HEARTBEAT_GRACE seconds.
HEARTBEAT_SECONDS = env_int("RESTORABLE_HEARTBEAT_SECONDS", 10, minimum=1)
# Two missed beats: the beat comes from a thread of its own, so a slow dump
# never misses one; the reaper runs every beat interval.
HEARTBEAT_GRACE = env_int("RESTORABLE_HEARTBEAT_GRACE", HEARTBEAT_SECONDS * 2 + 5, minimum=2)
RETRY_BACKOFF = env_int("RESTORABLE_RETRY_BACKOFF", 30, minimum=0)
# How long a job keeps trying to record its outcome while the panel's own
# database is unreachable (a restart, a failover) before giving up.
METADATA_RETRY_SECONDS = env_int("RESTORABLE_METADATA_RETRY_SECONDS", 120, minimum=0)
# How often each drills worker removes its host's sandboxes left by killed jobs or past their hours.
SANDBOX_REAP_SECONDS = env_int("RESTORABLE_SANDBOX_REAP_SECONDS", 300, minimum=5)
QUEUE_REDELIVER_SECONDS = env_int("RESTORABLE_QUEUE_REDELIVER_SECONDS", 600, minimum=30)
QUEUE_TIMEOUT_SECONDS = env_int("RESTORABLE_QUEUE_TIMEOUT_SECONDS", 6 * 3600, minimum=60)
AGENT_QUEUE = env_str("RESTORABLE_AGENT_QUEUE") or f"agent.{socket.gethostname()}"

# --- Restorable -------------------------------------------------------------

STAGING_DIR = Path(env_str("RESTORABLE_STAGING_DIR") or DATA_DIR / "staging")
PG_BIN_ROOT = Path(env_str("RESTORABLE_PG_BIN_ROOT") or "/usr/lib/postgresql")
SANDBOX_BACKEND = env_choice("RESTORABLE_SANDBOX_BACKEND", "local", ("local", "docker"))
SANDBOX_DIR = Path(env_str("RESTORABLE_SANDBOX_DIR") or DATA_DIR / "sandboxes")
SANDBOX_DOCKER_IMAGE = env_str("RESTORABLE_SANDBOX_DOCKER_IMAGE", "postgres:{major}")
ROW_COUNT_EXACT_LIMIT = env_int("RESTORABLE_ROW_COUNT_EXACT_LIMIT", 50_000_000, minimum=0)
BASE_URL = env_str("RESTORABLE_BASE_URL", "http://127.0.0.1:8000")
HEARTBEAT_URL = env_secret("RESTORABLE_HEARTBEAT_URL")  # often carries a check token
METRICS_TOKEN = env_secret("RESTORABLE_METRICS_TOKEN")
METRICS_ALLOW = env_list("RESTORABLE_METRICS_ALLOW", ["127.0.0.1", "::1"])
SYSLOG = env_bool("RESTORABLE_SYSLOG", False)
LOG_LEVEL = env_choice("RESTORABLE_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "filters": {"quiet_housekeeping": {"()": "controlpanel.logfilters.QuietHousekeeping"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["quiet_housekeeping"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "WARNING" if LOG_LEVEL != "DEBUG" else "DEBUG"},
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "apprise": {"level": "WARNING"},  # its debug lines can quote channel URLs
        "httpx": {"level": "WARNING"},
    },
}
if SYSLOG:  # the playbook's `logger -t pg-backup`
    LOGGING["formatters"]["syslog"] = {"format": "pg-backup: %(levelname)s %(name)s %(message)s"}
    LOGGING["handlers"]["syslog"] = {"class": "logging.handlers.SysLogHandler", "address": "/dev/log",
                                     "formatter": "syslog", "filters": ["quiet_housekeeping"]}
    LOGGING["root"]["handlers"].append("syslog")
