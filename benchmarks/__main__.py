"""`python -m benchmarks [--scale ...]`: the same as `manage.py bench`."""

import os
import sys

import django
from django.core.management import call_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
call_command("bench", *sys.argv[1:])
