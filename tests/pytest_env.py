"""A plugin (-p tests.pytest_env) imported before pytest-django sets Django up:
point the suite at the real services by default."""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/restorable")
os.environ.setdefault("RESTORABLE_DATA_DIR", tempfile.mkdtemp(prefix="restorable-test-"))
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("RESTORABLE_HEARTBEAT_SECONDS", "1")
