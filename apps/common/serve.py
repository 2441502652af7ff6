"""Start gunicorn for the app of the current directory (its gunicorn.conf.py): the images' CMD.

`cd apps/proxy && python3 ../common/serve.py [gunicorn options]`. WEB_CONCURRENCY is checked
first, so that a bad value stops the start naming the variable and the expected form.
"""

import sys

from settings import workers

workers()

from gunicorn.app.wsgiapp import run  # noqa: E402 (imported once WEB_CONCURRENCY is known good)

sys.argv[0] = "gunicorn"
sys.exit(run())
