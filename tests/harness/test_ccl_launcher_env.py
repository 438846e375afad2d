"""hydra's own environment carries no libfabric variables of the caller:
hydra hands it to every rank, and an inherited FI_PROVIDER_PATH (usb4bench
sets one for itself) hid the venv's tcp provider from the tcp ranks."""

from usb4fabric import ccl_launch


def test_launcher_env_drops_the_callers_libfabric_variables(monkeypatch):
    monkeypatch.setenv("FI_PROVIDER_PATH", "/somewhere/.libs")
    monkeypatch.setenv("FI_PROVIDER", "usb4")
    monkeypatch.setenv("FI_USB4_IDLE_BLOCK_US", "0")
    monkeypatch.setenv("USB4_UNRELATED", "kept")
    env = ccl_launch.launcher_env()
    assert not [k for k in env if k.startswith("FI_")]
    assert env["USB4_UNRELATED"] == "kept"
    assert str(ccl_launch.VENV / "bin") in env["PATH"]
