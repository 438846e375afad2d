"""Where the harness finds the project: the checkout from the working
directory, the provider by option, environment or checkout (locations.py)."""

from pathlib import Path

from usb4fabric import locations

REPO_ROOT = Path(__file__).resolve().parents[2]


def _fake_checkout(root: Path) -> Path:
    (root / "prov_usb4" / "include").mkdir(parents=True)
    (root / "prov_usb4" / "include" / "usb4.h").write_text("")
    (root / "configure.ac").write_text("")
    return root


def test_checkout_is_found_walking_up_from_the_working_directory(tmp_path):
    tree = _fake_checkout(tmp_path / "tree")
    deep = tree / "a" / "b"
    deep.mkdir(parents=True)
    assert locations.checkout(deep) == tree.resolve()
    assert locations.checkout(tmp_path) is None
    assert locations.checkout(REPO_ROOT / "python" / "usb4fabric") == REPO_ROOT


def test_provider_dir_order(tmp_path):
    tree = _fake_checkout(tmp_path / "tree")
    lib_dir = tmp_path / "lib"
    lib_dir.mkdir()
    (lib_dir / locations.PROVIDER_LIB).write_text("")
    path = f"{tmp_path / 'other'}:{lib_dir}"
    assert locations.provider_dir("/x", {"USB4_PROVIDER_DIR": "/y"}, tree) == \
        (Path("/x"), "--provider-dir")
    assert locations.provider_dir(None, {"USB4_PROVIDER_DIR": "/y", "FI_PROVIDER_PATH": path},
                                  tree) == (Path("/y"), "USB4_PROVIDER_DIR")
    # libfabric's path: the folder of it that holds the provider
    assert locations.provider_dir(None, {"FI_PROVIDER_PATH": path}, tree) == \
        (lib_dir, "FI_PROVIDER_PATH")
    folder, how = locations.provider_dir(None, {}, tree / "sub")
    assert folder == tree.resolve() / ".libs" and "checkout" in how
    folder, how = locations.provider_dir(None, {}, tmp_path)
    assert folder is None and "USB4_PROVIDER_DIR" in how


def test_outside_a_checkout_the_package_data_or_nothing(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "osu_bench").mkdir(parents=True)
    (data / "osu_bench" / "osu_common.c").write_text("")
    monkeypatch.setattr(locations, "PACKAGE_DATA", data)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert locations.osu_sources(tmp_path) == data / "osu_bench"
    assert locations.osu_programs(tmp_path) is None
    assert locations.chroot_run(tmp_path) is None
    assert locations.ccl_bench(tmp_path) is None
    assert locations.build_cache(tmp_path, {"XDG_CACHE_HOME": "/c"}) == \
        Path("/c/usb4fabric/stacks")
    # in a checkout its own files win
    assert locations.osu_sources(REPO_ROOT) == REPO_ROOT / "osu_bench"
    assert locations.build_cache(REPO_ROOT) == REPO_ROOT / ".stacks"
