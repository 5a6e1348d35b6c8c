"""A real JupyterLab in a real browser (marker ``browser``; ``make test`` runs it).

The server is started the way ``make lab`` starts it (``python -m kdlab lab``: 127.0.0.1, a token, the offline
settings overrides) on a random free port with a random token, over copies of the notebooks (the lab saves what it
runs), with ``KDLAB_PROFILE=smoke`` for its kernels and the network guard logging any outbound attempt. Headless
Chromium (Debian's ``chromium``; ``.ci/run`` installs it) is driven by Playwright: every notebook runs all its
cells, no cell may show an error, and one explorer per notebook must redraw its figure when its slider moves.
Screenshots go to ``build/screenshots/``. The server is shut down even when a test fails.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]
RUN_ALL_S = 300
"""The longest a notebook's Run All may take in the browser (smoke; about 1.5 x its papermill time is usual)."""
REDRAW_S = 30
"""The longest a moved slider may take to redraw its figure."""

EXPLORERS = {
    "00_primer": "TemperatureExplorer(",
    "01_ofa": "OFAExplorer(",
    "02_cskd": "DenseShareExplorer(",
    "03_swtat": "MaskExplorer(",
    "04_cafd_face": "FacialDistanceExplorer(",
    "05_disdepth": "DepthExplorer(",
}
"""Per notebook, the source text of the cell whose explorer the test moves (its first slider)."""

if os.environ.get("KDLAB_REQUIRE_BROWSER") == "1":  # .ci/run: a missing browser is a failure, not a skip
    from playwright import sync_api
    assert CHROMIUM, "no chromium on PATH although KDLAB_REQUIRE_BROWSER=1"
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra (make env)")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH: `apt-get install chromium` (.ci/run does)", allow_module_level=True)


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    net_log: Path
    process: subprocess.Popen


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_status(url: str) -> int:
    """The status of a GET, without following redirects; 0 when nothing answers."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:  # refused (not listening yet) or reset
        return 0


def listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses (hex, as /proc/net writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    import secrets

    root = tmp_path_factory.mktemp("lab")
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(path, root / path.name)
    home = tmp_path_factory.mktemp("jupyter-home")  # config, runtime files, logs: outside the served folder
    port, token, net_log = free_port(), secrets.token_hex(16), home / "network.log"
    env = {**os.environ, "KDLAB_PROFILE": "smoke", "KDLAB_NETGUARD_LOG": str(net_log),
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    log = (home / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "kdlab", "lab", "--root-dir", str(root), "--port", str(port),
                                "--token", token, "--no-browser", "--expose-app"],
                               stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while http_status(f"{url}/api/status?token={token}") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start:\n{(home / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield Lab(url, token, root, net_log, process)
    finally:
        shut_down(process, url, token)
        log.close()


def shut_down(process: subprocess.Popen, url: str, token: str) -> None:
    """Ask the server to stop (it stops its kernels), then end its process group if it has not within 15 s."""
    try:
        request = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST")
        urllib.request.urlopen(request, timeout=5).close()
        process.wait(timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        pass
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser_page(lab):
    """One headless Chromium page; every request it makes is recorded (``page.requests``)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        requests: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        page.requests = requests
        try:
            yield page
        finally:
            context.close()
            browser.close()


def test_the_lab_binds_loopback_only_and_refuses_requests_without_the_token(lab):
    port = int(urlparse(lab.url).port)
    assert listening_addresses(port) <= {"0100007F", "00000000000000000000000001000000"}, \
        f"the server listens beyond 127.0.0.1: {listening_addresses(port)}"
    assert listening_addresses(port), "nothing listens on the lab's port"
    assert http_status(f"{lab.url}/api/contents") == 403
    assert http_status(f"{lab.url}/api/contents?token=wrong-{lab.token}") == 403
    assert http_status(f"{lab.url}/lab") in (302, 403)
    assert http_status(f"{lab.url}/api/contents?token={lab.token}") == 200
    overrides = json.loads((Path(sys.prefix) / "share/jupyter/lab/settings/overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


RUN_ALL = """async () => {
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    await panel.context.sessionContext.ready;
    window.__kdlabRun = null;
    app.commands.execute('notebook:run-all-cells').then(
        ok => { window.__kdlabRun = {ok: ok}; }, error => { window.__kdlabRun = {ok: false, error: String(error)}; });
}"""
KERNEL_PROFILE = """async () => {
    const kernel = window.jupyterapp.shell.currentWidget.context.sessionContext.session.kernel;
    let out = '';
    const future = kernel.requestExecute({code: 'print(PROFILE)', store_history: false});
    future.onIOPub = msg => { if (msg.header.msg_type === 'stream') { out += msg.content.text; } };
    await future.done;
    return out.trim();
}"""
ERRORS = """() => {
    const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
    const errors = [];
    for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i).toJSON();
        for (const output of cell.outputs || []) {
            if (output.output_type === 'error') { errors.push(`cell ${i}: ${output.ename}: ${output.evalue}`); }
        }
        if (cell.cell_type === 'code' && cell.source.trim() && cell.execution_count === null) {
            errors.push(`cell ${i} did not run`);
        }
    }
    return errors;
}"""


def open_and_run(page, lab: Lab, name: str) -> float:
    """Open ``name`` in the lab, Run All, wait until it finishes; return the seconds it took."""
    page.goto(f"{lab.url}/lab/tree/{name}.ipynb?token={lab.token}")
    page.wait_for_function(f"""() => {{ const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        return w && w.context && w.context.path === '{name}.ipynb' && w.content && w.content.model; }}""",
                           timeout=60_000)
    start = time.monotonic()
    page.evaluate(RUN_ALL)
    wait_or_fail(page, "() => window.__kdlabRun !== null", f"{name}: Run All did not finish in the lab", RUN_ALL_S)
    return time.monotonic() - start


def wait_or_fail(page, expression: str, message: str, seconds: float, arg=None) -> None:
    """``page.wait_for_function`` whose timeout fails the test with ``message`` instead of a bare timeout."""
    try:
        page.wait_for_function(expression, arg=arg, timeout=seconds * 1000, polling=250)
    except sync_api.TimeoutError:
        pytest.fail(f"{message} (waited {seconds:.0f} s)")


def explorer_cell(page, source: str):
    """The DOM node of the first code cell whose source contains ``source``, scrolled into view."""
    index = page.evaluate("""source => {
        const notebook = window.jupyterapp.shell.currentWidget.content;
        const index = notebook.widgets.findIndex(
            c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(source));
        if (index >= 0) { notebook.activeCellIndex = index; notebook.scrollToItem(index, 'start'); }
        return index;
    }""", source)
    assert index >= 0, f"no cell contains {source!r}"
    return page.evaluate_handle("i => window.jupyterapp.shell.currentWidget.content.widgets[i].node", index)


def figure_source(cell) -> str:
    image = cell.query_selector(".jp-OutputArea-output img")
    return image.get_attribute("src") if image else ""


@pytest.mark.parametrize("name", sorted(EXPLORERS))
def test_each_notebook_runs_in_the_lab_and_its_explorer_redraws(lab, browser_page, name):
    page = browser_page
    SHOTS.mkdir(parents=True, exist_ok=True)
    seconds = open_and_run(page, lab, name)
    errors = page.evaluate(ERRORS)
    run = page.evaluate("() => window.__kdlabRun")
    page.screenshot(path=str(SHOTS / f"{name}-run-all.png"))
    assert run["ok"] and not errors, f"{name}: Run All in the lab failed after {seconds:.0f} s: {run} {errors}"
    profile = page.evaluate(KERNEL_PROFILE)  # a kernel in `cpu` would take minutes: KDLAB_PROFILE must reach it
    assert profile == "smoke", f"{name}: the kernel ran the {profile!r} profile, not smoke"
    cell = explorer_cell(page, EXPLORERS[name])
    wait_or_fail(page, "cell => cell.querySelector('.jp-OutputArea-output img')",
                 f"{name}: the explorer shows no figure (a line of text instead? MPLBACKEND?)", 20, arg=cell)
    before = figure_source(cell)
    handle = cell.query_selector(".widget-slider .noUi-handle")
    assert handle is not None, f"{name}: the explorer shows no slider (is the widget front end installed?)"
    handle.scroll_into_view_if_needed()
    cell.screenshot(path=str(SHOTS / f"{name}-explorer-before.png"))
    handle.focus()
    page.keyboard.press("ArrowRight")
    wait_or_fail(page, "([cell, before]) => { const img = cell.querySelector('.jp-OutputArea-output img');"
                 " return img && img.getAttribute('src') !== before; }",
                 f"{name}: the explorer's figure did not change after its slider moved (is its render function "
                 "wired to the controls?)", REDRAW_S, arg=[cell, before])
    cell.screenshot(path=str(SHOTS / f"{name}-explorer-after.png"))
    assert figure_source(cell) != before
    print(f"{name}: Run All {seconds:.0f} s in the lab")


def test_nothing_left_127_0_0_1_while_the_notebooks_ran(lab, browser_page):
    """After the notebooks: the page asked nothing of another host, and the server and kernels tried nothing
    (the network guard's log is empty)."""
    outside = [url for url in browser_page.requests
               if urlparse(url).scheme in ("http", "https", "ws", "wss") and urlparse(url).hostname != "127.0.0.1"]
    assert browser_page.requests and not outside, f"requests beyond 127.0.0.1: {outside[:5]}"
    attempts = lab.net_log.read_text() if lab.net_log.exists() else ""
    assert not attempts, f"the server or a kernel tried the network:\n{attempts[:2000]}"
