"""Django settings for development, the demo and the tests, read from the environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.embedded_db import embedded_database

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable."""
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_list(name: str) -> list[str]:
    """Read a comma-separated environment variable, dropping blank items."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


TESTING = "pytest" in sys.modules or sys.argv[1:2] == ["test"]
DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
if DEBUG or TESTING:
    ALLOWED_HOSTS += ["127.0.0.1", "localhost", "testserver"]

# --- HTTPS ----------------------------------------------------------------------------
# Secure unless DEBUG or the tests, which serve plain http (`make run` on 127.0.0.1:8000,
# the test client); each setting can still be forced either way from the environment.
_HTTPS_ONLY = not (DEBUG or TESTING)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS_ONLY)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _HTTPS_ONLY)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _HTTPS_ONLY)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _HTTPS_ONLY)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _HTTPS_ONLY)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Opt-in: trust this header only behind a proxy that sets it and strips it from clients.
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be HEADER,VALUE, e.g. HTTP_X_FORWARDED_PROTO,https."
    )
SECURE_PROXY_SSL_HEADER = (
    (_proxy_ssl_header[0], _proxy_ssl_header[1]) if _proxy_ssl_header else None
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_filters",
    "domain",
    "repositories",
    "benchmarks",  # `manage.py bench`; part of this development project, not of the package
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "repositories.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if TESTING:
    # The whole test suite runs with N+1 detection: tests/conftest.py turns zeal on for
    # every test, and a lazy relation load repeated in a loop raises NPlusOneError.
    INSTALLED_APPS.append("zeal")
    ZEAL_RAISE = True
    # Test-only models for the read-parity tests (tests/repositories/test_read_parity.py).
    INSTALLED_APPS.append("tests.parity_app")
    # A project's own models under the base contract (tests/repositories/test_contract.py).
    INSTALLED_APPS.append("tests.example_app")

DEBUG_TOOLBAR = DEBUG and not TESTING and env_bool("DEBUG_TOOLBAR", True)
if DEBUG_TOOLBAR:
    INSTALLED_APPS.append("debug_toolbar")
    MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")
    INTERNAL_IPS = ["127.0.0.1"]
    # Start as the small "DJDT" tab, not the open panel that covers the admin's filters
    # and log-out link; a click opens it (and the browser remembers that choice).
    DEBUG_TOOLBAR_CONFIG = {"SHOW_COLLAPSED": True}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],  # the demo's home page
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

# --- Database -------------------------------------------------------------------------
# DATABASE_URL when set; otherwise the embedded PostgreSQL under .data/ is started on demand.
_database_url = os.environ.get("DATABASE_URL", "")
_database: dict[str, Any] = (
    dict(dj_database_url.parse(_database_url)) if _database_url else embedded_database(BASE_DIR)
)
_database_options: dict[str, Any] = dict(_database.get("OPTIONS", {}))
if env_bool("DB_POOL", True):
    # Django's psycopg pool requires CONN_MAX_AGE = 0: the pool owns connection reuse.
    _database_options["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2),
        "max_size": env_int("DB_POOL_MAX_SIZE", 20),
        "timeout": env_int("DB_POOL_TIMEOUT", 10),
        "max_idle": env_int("DB_POOL_MAX_IDLE", 300),
    }
    _database["CONN_MAX_AGE"] = 0
    # With the pool, Django turns CONN_HEALTH_CHECKS into psycopg_pool's
    # check=ConnectionPool.check_connection (it passes `check` itself, so it cannot go in
    # OPTIONS["pool"]): one round trip per checkout, and a connection that died while idle
    # is replaced rather than failing the caller's query. The repositories app makes one
    # failed check test every idle connection (REPOSITORIES["SWEEP_POOL_ON_FAILED_CHECK"]).
    _database["CONN_HEALTH_CHECKS"] = env_bool("DB_POOL_CHECK", True)
else:
    _database["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0)
    _database["CONN_HEALTH_CHECKS"] = True
if env_bool("DB_SERVER_SIDE_BINDING", False):
    _database_options["server_side_binding"] = True
_database_options.setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 5))
_database["OPTIONS"] = _database_options
_database["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME") or None}
DATABASES = {"default": _database}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "domain.User"
AUTHENTICATION_BACKENDS = ["domain.auth.EmailBackend"]
# Email is unique among live users only (a partial unique index), which Django's check
# cannot see; the EmailBackend looks users up case-insensitively among live rows.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"

# --- Repository layer -----------------------------------------------------------------
REPOSITORIES = {
    "SLOW_QUERY_MS": env_int("SLOW_QUERY_MS", 200),
    "MAX_PAGE_SIZE": env_int("MAX_PAGE_SIZE", 100),
    "CURSOR_SECRET": os.environ.get("CURSOR_SECRET", ""),  # defaults to SECRET_KEY
    "SESSION_TTL_SECONDS": env_int("SESSION_TTL_SECONDS", 14 * 24 * 3600),
    "CONFIG_CACHE_SECONDS": env_int("CONFIG_CACHE_SECONDS", 300),
}
# DB_TRANSACTION_POOLING=1: DATABASE_URL is PgBouncer in transaction mode. Server-side
# cursors are off (a cursor cannot outlive its transaction there) and the layer's startup
# check refuses what cannot work (session SETs, assume_role, named prepared statements).
if env_bool("DB_TRANSACTION_POOLING", False):
    _database["DISABLE_SERVER_SIDE_CURSORS"] = True
    REPOSITORIES["TRANSACTION_POOLING"] = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "repositories.queries": {"handlers": ["console"], "level": "WARNING"},
    },
}

# --- Read replicas (opt-in) -----------------------------------------------------------
# DATABASE_REPLICA_URLS: comma-separated URLs of streaming replicas of the primary. Each
# becomes an alias replica_0, replica_1, ... with the primary's settings but a short
# connect timeout and pool timeout (a stopped replica is skipped in seconds, not after
# the pool's timeout); reads outside a transaction go to a healthy one (see
# repositories.core.routing and docs/scaling.md). Unset: one database, no router.
_replica_urls = env_list("DATABASE_REPLICA_URLS")
for _index, _replica_url in enumerate(_replica_urls):
    _replica: dict[str, Any] = {**_database, **dj_database_url.parse(_replica_url)}
    _replica_options = {**_database_options, **_replica.get("OPTIONS", {})}
    _replica_options["connect_timeout"] = env_int("DB_REPLICA_CONNECT_TIMEOUT", 1)
    if "pool" in _replica_options:
        _replica_options["pool"] = {
            **_replica_options["pool"],
            "min_size": 0,
            "timeout": env_int("DB_REPLICA_POOL_TIMEOUT", 2),
        }
    _replica["OPTIONS"] = _replica_options
    _replica["TEST"] = {"MIRROR": "default"}  # tests read the primary's test database
    DATABASES[f"replica_{_index}"] = _replica
if _replica_urls:
    DATABASE_ROUTERS = ["repositories.core.routing.ReplicaRouter"]
    REPOSITORIES["READ_REPLICAS"] = [f"replica_{i}" for i in range(len(_replica_urls))]
    REPOSITORIES["REPLICA_MAX_LAG_SECONDS"] = env_int("DB_REPLICA_MAX_LAG_SECONDS", 5)
    MIDDLEWARE.insert(
        MIDDLEWARE.index("repositories.middleware.AuditContextMiddleware"),
        "repositories.core.routing.ConsistencyScopeMiddleware",
    )
