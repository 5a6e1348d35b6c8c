"""The lab launcher: 127.0.0.1, a token, offline settings (the browser tests run the real server)."""
import json

import pytest

from kdlab.lab import LAB_OVERRIDES, install_overrides, lab_command, overrides_path


def test_the_command_binds_loopback_with_the_given_port_and_token():
    command = lab_command("notebooks", port=8899, token="abc", open_browser=False, expose_app=True)
    assert command[1:3] == ["-m", "jupyterlab"] and "--ServerApp.ip=127.0.0.1" in command
    assert {"--ServerApp.root_dir=notebooks", "--ServerApp.port=8899", "--ServerApp.port_retries=0",
            "--IdentityProvider.token=abc", "--no-browser", "--expose-app-in-browser"} <= set(command)
    plain = lab_command("notebooks")
    assert not any(flag.startswith(("--ServerApp.port", "--IdentityProvider.token")) for flag in plain)
    assert "--no-browser" not in plain and "--expose-app-in-browser" not in plain
    with pytest.raises(ValueError, match="token must not be empty"):
        lab_command("notebooks", token=" ")
    with pytest.raises(ValueError, match="port must be in 1..65535"):
        lab_command("notebooks", port=70000)


def test_overrides_are_merged_into_the_environments_settings(tmp_path):
    path = overrides_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
                                "@jupyterlab/apputils-extension:notification": {"doNotDisturbMode": True,
                                                                                 "fetchNews": "true"}}))
    assert install_overrides(tmp_path) == path
    settings = json.loads(path.read_text())
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}, "others kept"
    assert settings["@jupyterlab/apputils-extension:notification"] == {
        "doNotDisturbMode": True, "fetchNews": "false", "checkForUpdates": False}, "ours win, theirs kept"
    assert settings["@jupyterlab/extensionmanager-extension:plugin"] == LAB_OVERRIDES[
        "@jupyterlab/extensionmanager-extension:plugin"]
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        install_overrides(tmp_path)
    assert path.read_text() == "[1, 2]", "a file it cannot merge is left alone"
    fresh = tmp_path / "fresh"
    assert json.loads(install_overrides(fresh).read_text()) == LAB_OVERRIDES
