"""Gunicorn settings of the view: the shared ones (apps/common/gunicorn_base.py) and its app.

`cd apps/view && python3 ../common/serve.py` serves it on $PORT (default 3030); settings:
docs/apps.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))

from gunicorn_base import *  # noqa: F403

wsgi_app = "view:application"
