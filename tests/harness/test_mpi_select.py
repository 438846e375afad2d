"""One place selects each stack's fabric (usb4fabric/mpi_select.py): the
mpirun command lines of the harness's profiles, the MPI stacks, the tests'
fabrics (one host, multihost, liveness) and the bench scripts' stacks are
those they were before the copies became one.

fixtures/mpi_select_argv.json holds what each produced at ca583c2 (before):
``python3 tests/harness/test_mpi_select.py > tests/harness/fixtures/mpi_select_argv.json``
run there wrote it.  Command lines are compared as Open MPI reads them: the
order of ``--mca`` settings and of ``-x`` exports does not matter, every
other word keeps its place.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "mpi_select_argv.json"
for folder in (REPO_ROOT / "python", REPO_ROOT / "bench", REPO_ROOT / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from usb4fabric import profiles, stacks  # noqa: E402

PROVIDER = Path("/prov")
BASE = Path("/base")
PROGRAM = Path("/p/osu_latency")
HOSTS = stacks.Hosts((("10.0.0.1", 1), ("10.0.0.2", 1)), subnet="10.0.0.0/24", iface="tb0",
                     agent=Path("/agent"))


class FakeCluster:
    """What bench/compare_hosts.make_stacks asks of a cluster."""

    def prefix_argv(self, host):
        return ["ip", "netns", "exec", f"host{host}"]

    def mpirun_argv(self, slots=1):
        return ["mpirun", "-H", "a:1,b:1"]


def _module(name: str, relative: str):
    """A test module or conftest loaded from its file (not as pytest's plugin)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _profiles() -> dict:
    out = {}
    for multihost in (False, True):
        for p in profiles.build(PROVIDER, multihost, profiles.ALL_PROFILES,
                                probe_verbs=lambda: "mlx5_0"):
            out[f"{p.name} multihost={multihost}"] = {
                "two_sided": p.mpi_args(False), "one_sided": p.mpi_args(True),
                "carrier": p.carrier, "one_sided_carrier": p.one_sided_carrier,
                "one_sided_is_fabric": p.one_sided_is_fabric}
    for stack in stacks.STACKS.values():
        for hosts in (None, HOSTS):
            for p in profiles.for_stack(stack, PROVIDER, hosts):
                key = f"{stack.name} {p.name} hosts={bool(hosts)}"
                try:
                    out[key] = {"two_sided": p.mpi_args(False), "one_sided": p.mpi_args(True),
                                "carrier": p.carrier, "one_sided_carrier": p.one_sided_carrier}
                except ValueError as exc:
                    out[key] = {"error": str(exc)}
    return out


def _stacks() -> dict:
    out = {}
    for stack in stacks.STACKS.values():
        for fabric in stacks.FABRICS:
            for one_sided in (False, True):
                for hosts in (None, HOSTS):
                    key = f"{stack.name} {fabric} one_sided={one_sided} hosts={bool(hosts)}"
                    try:
                        out[key] = stack.argv(2, [str(PROGRAM)], fabric, one_sided=one_sided,
                                              provider_dir=PROVIDER, env={"A": "1"},
                                              hosts=hosts)
                    except ValueError as exc:
                        out[key] = str(exc)
    return out


def _conftest() -> dict:
    conftest = _module("usb4_tests_conftest", "tests/conftest.py")
    out = {fabric: conftest.mpirun_argv(fabric, 2, [str(PROGRAM)], env={"A": "1"},
                                        mca=["--mca", "x", "y"], provider_dir=PROVIDER)
           for fabric in sorted(conftest.FABRICS)}
    multihost = _module("usb4_multihost_conftest", "tests/multihost/conftest.py")
    for fabric in multihost.FABRICS:
        for one_sided in (False, True):
            out[f"multihost {fabric} one_sided={one_sided}"] = multihost.fabric_args(
                fabric, PROVIDER, one_sided)
    multihost_tests = str(REPO_ROOT / "tests" / "multihost")
    if multihost_tests not in sys.path:
        sys.path.insert(0, multihost_tests)
    liveness = _module("usb4_test_liveness", "tests/multihost/test_liveness.py")
    for fabric, args in liveness.FABRICS.items():
        out[f"liveness {fabric}"] = args(PROVIDER)
    return out


def _bench() -> dict:
    import compare_hosts
    import compare_local

    out = {}
    for portable in (False, True):
        for stack in compare_local.make_stacks(Path("/repo"), portable, BASE):
            out[f"local {stack.name} portable={portable}"] = stack.argv(PROGRAM, ["-m", "8"])
        for stack in compare_hosts.make_stacks(FakeCluster(), Path("/repo"), portable, BASE):
            out[f"hosts {stack.name} portable={portable}"] = stack.argv(PROGRAM, ["-m", "8"])
    return out


def produced() -> dict:
    """Every command line of the four places, paths of this tree as <repo>."""
    made = {"profiles": _profiles(), "stacks": _stacks(), "conftest": _conftest(),
            "bench": _bench()}
    return json.loads(json.dumps(made, default=str).replace(str(REPO_ROOT), "<repo>"))


def canonical(value):
    """A command line as Open MPI reads it: --mca settings and -x exports as
    sorted pairs, the other words in order; anything else as it is."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if not (isinstance(value, list) and all(isinstance(w, str) for w in value)):
        return value
    words, settings, exports, i = [], [], [], 0
    while i < len(value):
        if value[i] == "--mca" and i + 2 < len(value) + 1:
            settings.append(value[i + 1:i + 3])
            i += 3
        elif value[i] == "-x" and i + 1 < len(value):
            exports.append(value[i + 1])
            i += 2
        else:
            words.append(value[i])
            i += 1
    return {"words": words, "mca": sorted(settings), "x": sorted(exports)}


def test_every_command_line_is_what_it_was():
    golden = json.loads(GOLDEN.read_text())
    now = produced()
    for place in golden:
        for key, before in golden[place].items():
            assert key in now[place], f"{place}: {key} no longer made"
            assert canonical(now[place][key]) == canonical(before), f"{place}: {key}"
        assert set(now[place]) == set(golden[place]), place


def test_canonical_form_keeps_what_matters():
    a = ["mpirun", "--mca", "pml", "cm", "-x", "A=1", "--mca", "mtl", "ofi", "prog"]
    b = ["mpirun", "-x", "A=1", "--mca", "mtl", "ofi", "--mca", "pml", "cm", "prog"]
    assert canonical(a) == canonical(b)
    assert canonical(a) != canonical(a[:-1] + ["other"])
    assert canonical(a) != canonical(["mpirun", "--mca", "pml", "ob1", "-x", "A=1",
                                      "--mca", "mtl", "ofi", "prog"])
    assert canonical(a) != canonical(a[:5] + ["A=2"] + a[6:])


if __name__ == "__main__":
    json.dump(produced(), sys.stdout, indent=1, sort_keys=True)
    print()
