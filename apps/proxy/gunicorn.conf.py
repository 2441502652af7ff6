"""Gunicorn settings of the proxy: the shared ones (apps/common/gunicorn_base.py) and its app.

`cd apps/proxy && python3 ../common/serve.py` serves it on $PORT (default 3030); settings:
docs/apps.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))

from gunicorn_base import *  # noqa: F403
from settings import env_int

wsgi_app = "proxy:application"
# The proxy's threads spend most of their time waiting for the upstream: one per concurrent
# client connection keeps requests from queueing behind them (the GIL is free while they wait).
threads = env_int("GUNICORN_THREADS", 32, 1, 1024)
