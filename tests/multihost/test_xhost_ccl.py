"""ccl_bench across two namespace hosts over usb4 (one rank per host, data
checked: errors 0): started by hand with the unique id through a socket on
the first host, and by usb4bench under the ccl venv's hydra (--hosts,
--launch-agent) beside libfabric tcp over the same cable.  Skips without the
ccl venv or the program (CI has both)."""

import subprocess
import sys
from pathlib import Path

import pytest

from usb4fabric import ccl_launch, ccl_parse, nshosts

pytestmark = pytest.mark.multihost

PYDIR = Path(__file__).resolve().parents[2] / "python"
TIMEOUT = 90
IFACE = "tb0"
SMALL = ["-b", "8", "-e", "256K", "-f", "8", "-n", "3", "-w", "1"]


def where(cluster):
    slots = tuple((h.addr, 1) for h in cluster.hosts)
    return ccl_launch.Where(ccl_launch.Hosts(slots, cluster.cables[0].subnet, IFACE,
                                             nshosts.agent_path()), IFACE)


@pytest.mark.parametrize("collective", ["allreduce", "reduce_scatter"])
def test_two_hosts_by_hand_socket_bootstrap(cluster2, provider_dir, ccl_program, tmp_path,
                                            collective):
    env = ccl_launch.rank_env("usb4", provider_dir, where(cluster2), tmp_path / "unused")
    assert env["USB4_CCL_ID_ADDR"].startswith(cluster2.hosts[0].addr + ":")
    procs = [cluster2.popen(i, ccl_launch.direct_argv(i, 2, ccl_program)
                            + ["-C", collective] + SMALL, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-2000:] + err[-2000:]
    table = ccl_parse.parse(outs[0][0])  # raises on a wrong element
    assert (table.collective, table.ranks, table.errors) == (collective, 2, 0)
    assert table.rows[-1].size == 256 * 1024


def test_usb4bench_two_hosts_under_hydra(cluster2, provider_dir, ccl_program, tmp_path):
    out = tmp_path / "res"
    argv = [sys.executable, "-m", "usb4fabric.cli", "run", "--bench", "ccl_allreduce",
            "--fabric", "usb4,ethernet", "--repeat", "1", "-m", "8:65536", "-i", "3",
            "-x", "1", "--hosts", ",".join(h.addr for h in cluster2.hosts),
            "--iface", IFACE, "--launch-agent", str(nshosts.agent_path()),
            "--provider-dir", str(provider_dir), "--output", str(out)]
    done = cluster2.run(0, argv, env={"PYTHONPATH": str(PYDIR)}, timeout=2 * TIMEOUT)
    runs = (out / "runs.csv").read_text()
    assert done.returncode == 0, runs + done.stdout[-2000:] + done.stderr[-2000:]
    assert "-launcher-exec" in runs and "USB4_CCL_ID_ADDR" in runs
    results = (out / "results.csv").read_text().splitlines()
    for fabric in ("usb4", "ethernet"):
        rows = [line for line in results if line.startswith(f"{fabric},ccl_allreduce,") and ",busbw," in line]
        assert len(rows) == 14 and all(",hosts," in line for line in rows)  # 8 B .. 64 KiB
