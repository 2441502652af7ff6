"""Start gunicorn for the app of the current directory: the images' CMD, and `make serve`'s.

`cd apps/<app> && python3 ../common/serve.py [gunicorn options]` serves <app>.py's `application`
with gunicorn.conf.py (beside this file). WEB_CONCURRENCY is read here, before gunicorn is
imported: gunicorn parses it at import and would stop on "1e3" with a bare ValueError.
"""

import sys
from pathlib import Path

from settings import env_int

workers = env_int("WEB_CONCURRENCY", 2, 1, 64)

from gunicorn.app.wsgiapp import run  # noqa: E402 (imported once WEB_CONCURRENCY is known good)

config = Path(__file__).with_name("gunicorn.conf.py")
sys.argv[:1] = ["gunicorn", f"--config={config}", f"--workers={workers}"]
sys.exit(run())
