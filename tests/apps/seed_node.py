"""The seed's own Node.js apps, extracted from the seed text at run time, run outside the repo.

Used by the parity tests and by bench/apps.py. Two changes are made to the seed's code, no
more: the port comes from $PORT (the seed hard-codes 3030) and it listens on 127.0.0.1 only.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from caches import cache_root

REPO = Path(__file__).resolve().parents[2]
SEED_TEXT = Path(
    os.environ.get("SEED_TEXT", REPO.parent / "shared" / "seed" / "exploring-istio-by-example.md")
)
DIRECTORY = cache_root() / "seed-node"
REQUEST_PACKAGE = "request@2.88.2"  # the last release of the package the seed's proxy uses
# (seed text, replacement): each must occur exactly once in both apps.
PATCHES = (
    ("const port = 3030;", "const port = process.env.PORT || 3030;"),
    ("server.listen(port, ", "server.listen(port, '127.0.0.1', "),
)


def missing():
    """Why the seed's Node apps cannot run here, or None."""
    if not shutil.which("node"):
        return "node is not installed (apt-get install nodejs npm)"
    if not SEED_TEXT.is_file():
        return f"the seed text is not at {SEED_TEXT} (set SEED_TEXT)"
    return None


def extract(text):
    """{"proxy": js, "webserver": js} from the seed text's javascript blocks."""
    apps = {}
    for block in re.findall(r"```javascript\n(.*?)```", text, re.DOTALL):
        name = "proxy" if "requestService" in block else "webserver"
        for old, new in PATCHES:
            if block.count(old) != 1:
                raise ValueError(f"the seed's {name} code no longer has {old!r} once")
            block = block.replace(old, new)
        apps[name] = block
    if set(apps) != {"proxy", "webserver"}:
        raise ValueError(f"expected the proxy and webserver code in {SEED_TEXT}, found {set(apps)}")
    return apps


def prepare(with_request=False):
    """Write <DIRECTORY>/<app>.js; with_request: npm-install the `request` package once."""
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    for name, code in extract(SEED_TEXT.read_text()).items():
        (DIRECTORY / f"{name}.js").write_text(code)
    if with_request and not has_request():
        if not shutil.which("npm"):
            raise RuntimeError("npm is not installed (apt-get install npm)")
        print(f">> npm install {REQUEST_PACKAGE} in {DIRECTORY}", flush=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", REQUEST_PACKAGE],
            cwd=DIRECTORY,
            check=True,
        )
    return DIRECTORY


def has_request():
    return (DIRECTORY / "node_modules" / "request" / "package.json").is_file()


def start(name, port, log, **env):
    """Start the seed's `name` app with node on 127.0.0.1:`port`."""
    return subprocess.Popen(
        ["node", str(DIRECTORY / f"{name}.js")],
        cwd=DIRECTORY,
        env={**os.environ, "PORT": str(port), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
