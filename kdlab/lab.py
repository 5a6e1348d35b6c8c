"""How kdlab starts JupyterLab (``make lab``, ``python -m kdlab lab``, the browser tests): on 127.0.0.1 only, behind a
token, with the project's settings overrides, so a classroom runs offline and no one else on the network can reach a
student's kernel.

JupyterLab asks on first start whether to fetch "official Jupyter news" and would then poll a website, and its
extension manager lists PyPI: :data:`LAB_OVERRIDES` switches both off. JupyterLab reads them from
``<prefix>/share/jupyter/lab/settings/overrides.json`` (the "overrides" of its settings system);
:func:`install_overrides` merges them into that file of the environment that runs the server.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}
"""Settings that would make the lab reach the network, switched off (plugin id -> settings)."""


def overrides_path(prefix: str | Path = sys.prefix) -> Path:
    """Where the JupyterLab of the environment at ``prefix`` reads its settings overrides."""
    return Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def install_overrides(prefix: str | Path = sys.prefix) -> Path:
    """Merge :data:`LAB_OVERRIDES` into the environment's ``overrides.json`` (other plugins' entries kept; ours win)
    and return its path. A file that is not a JSON object is a ``ValueError`` naming it, never overwritten."""
    path = overrides_path(prefix)
    current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if not isinstance(current, dict):
        raise ValueError(f"{path} is not a JSON object of settings; fix or remove it")
    for plugin, settings in LAB_OVERRIDES.items():
        current[plugin] = {**current.get(plugin, {}), **settings}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    return path


def lab_command(root_dir: str | Path, *, port: int | None = None, token: str | None = None,
                open_browser: bool = True, expose_app: bool = False) -> list[str]:
    """The ``jupyter lab`` command line: bound to 127.0.0.1, serving ``root_dir``; ``port`` and ``token`` fixed when
    given (JupyterLab picks a free port and a random token otherwise; an empty token is refused, it would switch
    the token off), ``--allow-root`` when running as root (containers, cloud shells), ``expose_app`` puts the
    application object in the page (``window.jupyterapp``, for the browser tests)."""
    if token is not None and not token.strip():
        raise ValueError("token must not be empty: an empty token lets anyone on 127.0.0.1 run code")
    if port is not None and not 0 < int(port) < 65536:
        raise ValueError(f"port must be in 1..65535, got {port}")
    command = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root_dir}"]
    if port is not None:
        command += [f"--ServerApp.port={int(port)}", "--ServerApp.port_retries=0"]
    if token is not None:
        command.append(f"--IdentityProvider.token={token}")
    if not open_browser:
        command.append("--no-browser")
    if expose_app:
        command.append("--expose-app-in-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command
