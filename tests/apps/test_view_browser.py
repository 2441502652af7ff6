"""The view's page in a real browser (headless Chromium, tests/browser.py): what a learner sees
with the series' 80/20 split, then with Prometheus gone. Screenshots: the test's tmp dir and
.artifacts/view.png, .artifacts/view-prometheus-down.png (gitignored)."""

import shutil

from apps_live import REPO
from browser import Browser

# What the page shows, read from its stable ids and data-* attributes.
FIGURES = """{
  refreshes: +document.getElementById("updated").dataset.refreshes,
  edges: Object.fromEntries([...document.querySelectorAll("[data-edge]")].map((e) => [
    e.dataset.edge,
    {share: e.dataset.share, rps: e.dataset.rps, success: e.dataset.success,
     shown: e.querySelector(".share").textContent},
  ])),
  nodes: [...document.querySelectorAll("[data-node]")].map((n) => n.dataset.node),
  banners: Object.fromEntries([...document.querySelectorAll(".banner")]
    .filter((b) => !b.hidden).map((b) => [b.id, b.textContent])),
  objects: [...document.querySelectorAll(".object")]
    .map((o) => `${o.closest("[data-hop]").dataset.hop} ${o.dataset.kind} ${o.dataset.name}`),
}"""


def figures_when(condition):
    return f"({condition}) && {FIGURES}"


def keep(path, name):
    artifacts = REPO / ".artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copyfile(path, artifacts / name)


def test_the_page_shows_the_split_then_names_prometheus_down(
    serve, prometheus, kubernetes, tmp_path
):
    view = serve("view", PROMETHEUS_URL=prometheus.url, **kubernetes.env)
    with Browser() as browser:
        browser.open(f"http://127.0.0.1:{view.port}/")
        seen = browser.wait(
            figures_when('document.querySelector("[data-edge]")'), "the graph's edges"
        )
        assert seen["edges"] == {
            "istio-ingressgateway->proxy:v1": {"share": "1", "rps": "10", "success": "0.98",
                                               "shown": "100%"},
            "proxy->webserver:v1": {"share": "0.8", "rps": "8", "success": "0.95", "shown": "80%"},
            "proxy->webserver:v2": {"share": "0.2", "rps": "2", "success": "1", "shown": "20%"},
        }  # fmt: skip
        assert seen["nodes"] == ["istio-ingressgateway", "proxy", "webserverv1", "webserverv2"]
        assert seen["banners"] == {}
        assert "proxy->webserver VirtualService webserver" in seen["objects"]
        assert "istio-ingressgateway->proxy Gateway default-gateway" in seen["objects"]
        # it refreshes itself (fetch, no reload): the counter lives in the same document
        browser.wait(f"+document.getElementById('updated').dataset.refreshes > {seen['refreshes']}",
                     "a refresh 2 s later")  # fmt: skip
        keep(browser.screenshot(tmp_path / "view.png"), "view.png")
        assert browser.console_errors() == []

        prometheus.stop()
        down = browser.wait(
            figures_when('!document.getElementById("banner-prometheus").hidden'),
            "the banner naming Prometheus",
        )
        banner = down["banners"]["banner-prometheus"]
        assert banner.startswith("Prometheus is not answering")
        assert f"cannot connect to {prometheus.url}: Connection refused" in banner
        assert down["edges"] == {}
        assert len(down["nodes"]) == 4 and down["objects"]  # the rest is still shown
        keep(browser.screenshot(tmp_path / "view-down.png"), "view-prometheus-down.png")
        assert browser.console_errors() == []
