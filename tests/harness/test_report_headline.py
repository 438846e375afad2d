"""The report's headline (cable first), provenance of the benchmark programs,
and the sections per placement."""

from test_report import make_results, md_table
from usb4fabric import report

CABLE = {("usb4", "latency"): 4.0, ("ethernet", "latency"): 40.0,
         ("usb4", "bw"): 2000.0, ("ethernet", "bw"): 500.0}


def _two_placements(tmp_path):
    cable = make_results(tmp_path / "cable", values=CABLE, placement="cable")
    here = make_results(tmp_path / "here")
    return report.build([here, cable], None, "both")


def test_headline_cable_first_with_ratios(tmp_path):
    rep = _two_placements(tmp_path)
    md = report.write(rep, tmp_path / "rep")["markdown"].read_text()
    cols, rows = md_table(md, "where", "measure")
    assert md.index("## Summary") < md.index("## Notes") < md.index("## Measured")
    assert [r[:2] for r in rows] == [["2 hosts, over the cable", "latency at 8 B"],
                                     ["2 hosts, over the cable", "bandwidth at 1 MiB"],
                                     ["one host", "latency at 8 B"],
                                     ["one host", "bandwidth at 1 MiB"]]
    cable_lat, cable_bw, host_lat, host_bw = (dict(zip(cols, r)) for r in rows)
    assert cable_lat["usb4"] == "4.00 us" and cable_lat["Ethernet"] == "40.00 us"
    assert cable_lat["usb4 vs Ethernet"] == "0.10x (10.0x lower: better)"
    assert cable_bw["usb4 vs Ethernet"] == "4.00x (4.0x higher: better)"
    # no shm between hosts: the same host's, said so
    assert cable_lat["shared memory"] == "1.00 us (same host)"
    assert cable_lat["usb4 vs shared memory"] == "4.00x (4.0x higher: worse)"
    assert host_lat["usb4 vs shared memory"] == "2.00x (2.0x higher: worse)"
    assert host_bw["usb4 vs Ethernet"] == "3.00x (3.0x higher: better)"
    # sections: the cable's first, each with its plots
    assert md.index("## Measured 2 hosts, over the cable") < md.index("## Measured one host")
    assert "![latency: latency vs message size (2 hosts, over the cable)](latency-cable.png)" in md
    assert "(latency.png)" in md
    assert (tmp_path / "rep" / "bw-cable.png").stat().st_size > 0
    assert "CPU time per GB: not in these results" in md


def test_headline_says_why_the_cable_is_missing(tmp_path):
    here = make_results(tmp_path / "here", placement_missing="not root: ip netns needs root")
    md = report.render_markdown(report.build([here], None, "x"))
    assert "cable are missing: not root: ip netns needs root" in md
    _, rows = md_table(md, "where", "measure")
    assert {r[0] for r in rows} == {"one host"}


def test_headline_without_a_measure_says_so(tmp_path):
    only_lat = {k: v for k, v in CABLE.items() if k[1] == "latency"}
    res = make_results(tmp_path / "r", values=only_lat)
    cols, rows = md_table(report.render_markdown(report.build([res], None, "x")),
                          "where", "measure")
    bw = dict(zip(cols, rows[1]))
    assert bw["usb4"] == "not measured" and bw["usb4 vs Ethernet"] == "not measured"


def test_provenance_names_the_suite_that_ran(tmp_path):
    ours = make_results(tmp_path / "ours", osu_title="usb4 osu_bench (OSU method) MPI Latency Test",
                        osu_version="0.1.0")
    old = make_results(tmp_path / "old", osu_title="OSU MPI Latency Test", osu_version="7.4")
    real = make_results(tmp_path / "real", osu_title="OSU MPI Latency Test", osu_version="7.4",
                        osu_suite={"kind": "osu", "root": "/opt/osu", "found_by": "--osu-dir"})
    said = {name: report.suite_summary(report.build([d], None, name))
            for name, d in (("ours", ours), ("old", old), ("real", real))}
    assert said["ours"] == ["usb4 osu_bench 0.1.0 (this project's OSU-method programs, "
                            "not the OSU suite)"]
    assert len(said["old"]) == 1 and said["old"][0].startswith("usb4 osu_bench (")
    assert "printed the OSU suite's banner: OSU MPI Latency Test v7.4" in said["old"][0]
    assert said["real"] == ["OSU Micro-Benchmarks 7.4"]
    md = report.render_markdown(report.build([ours], None, "ours"))
    assert "- Benchmark programs that ran: usb4 osu_bench 0.1.0 (this project's" in md


def test_ratio_columns_with_descriptive_series_names(tmp_path):
    """Series named for what carried them ("usb4 — 2 hosts, udp link over a veth
    cable") still give usb4 / Ethernet ratio columns (none did before)."""
    cable = make_results(tmp_path / "cable", values=CABLE, placement="cable")
    rep = report.build([cable], None, "c")
    named = {"usb4": "usb4 — 2 hosts, udp link over a veth cable",
             "ethernet": "Ethernet — libfabric tcp, 2 hosts",
             "ethernet-btl": "Ethernet — Open MPI btl tcp, 2 hosts"}
    for df in (rep.results, rep.runs):
        df["series"] = df["fabric"].map(named)
    rep.summary["series"] = rep.summary["series"].map(
        {f"{f} — 2 hosts, over the cable": n for f, n in named.items()})
    cols, rows = report.ratio_rows(rep, "cable")
    ratio = f"{named['usb4']} / {named['ethernet']}"
    assert ratio in cols
    lat8 = next(r for r in rows if r[:3] == ["latency", "latency (us)", "8 B"])
    assert lat8[cols.index(ratio)] == "0.100"
