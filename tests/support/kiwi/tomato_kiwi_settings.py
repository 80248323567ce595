"""Django settings of the Kiwi TCMS the tests start (tests/support/kiwi.rs).

Kiwi's product settings over SQLite. The database file comes from TOMATO_KIWI_DB: Kiwi's own
KIWI_DB_NAME is read through its secrets helper, which takes a value naming an existing file
for a file *holding* the value, so a path to an existing database is misread.
"""

import inspect
import os

# django-modern-rpc 0.12.1 imports inspect.getargspec, removed in Python 3.11. Django reads
# this module before it loads any app, so the alias is in place before modernrpc is imported.
if not hasattr(inspect, "getargspec"):
    inspect.getargspec = inspect.getfullargspec

from tcms.settings.product import *  # noqa: E402,F401,F403

DEBUG = False
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["TOMATO_KIWI_DB"],
        "OPTIONS": {"timeout": 30},
    }
}
# Nothing leaves the machine: no telemetry, no e-mail, no outside checks.
EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
MEDIA_ROOT = os.path.join(os.path.dirname(os.environ["TOMATO_KIWI_DB"]), "uploads")
STATIC_ROOT = os.path.join(os.path.dirname(os.environ["TOMATO_KIWI_DB"]), "static")
