"""usb4fabric.rails: the provider's per-rail lines as data and result rows;
tests/logcounters.rails reads the same lines for the multi-host tests."""

from __future__ import annotations

import sys
from pathlib import Path

from usb4fabric import rails

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import logcounters  # noqa: E402

LOG = """\
libfabric:7:1700000000::usb4:ep_data:usb4_udp_rails_log():400<info> udp rail tb0: live; \
datagrams sent 10 bytes sent 1000 datagrams received 4 bytes received 400 retransmitted 0 \
send errors 0 retired 0 revived 0
libfabric:7:1700000000::usb4:ep_data:usb4_udp_rails_log():400<info> udp rail tb1: retired; \
datagrams sent 7 bytes sent 700 datagrams received 2 bytes received 200 retransmitted 3 \
send errors 1 retired 2 revived 1
libfabric:7:1700000000::usb4:ep_data:log_stats():900<info> udp: sent 17 received 6 busy 0
libfabric:8:1700000000::usb4:ep_data:usb4_udp_rails_log():400<info> udp rail tb1: live; \
datagrams sent 1 bytes sent 100 datagrams received 0 bytes received 0 retransmitted 0 \
send errors 0 retired 0 revived 0
"""


def test_parse_lines():
    found = rails.parse(LOG)
    assert [(r.name, r.state) for r in found] == [("tb0", "live"), ("tb1", "retired"),
                                                  ("tb1", "live")]
    assert found[1].counters == {"datagrams_sent": 7, "bytes_sent": 700,
                                 "datagrams_received": 2, "bytes_received": 200,
                                 "retransmitted": 3, "send_errors": 1, "retired": 2,
                                 "revived": 1}
    assert set(found[0].counters) == set(rails.COUNTERS)
    assert rails.parse("udp: sent 3 received 4\n") == []


def test_result_rows_sum_per_rail():
    rows = rails.result_rows(rails.parse(LOG), {"fabric": "usb4", "benchmark": "bw"})
    by = {r["metric"]: r for r in rows}
    assert by["rail tb1 bytes_sent"]["value"] == 800
    assert by["rail tb1 bytes_sent"]["unit"] == "B"
    assert by["rail tb1 retired"]["unit"] == "count"
    assert by["rail tb0 datagrams_sent"]["size"] is None
    assert all(r["fabric"] == "usb4" for r in rows)
    assert len(rows) == 2 * len(rails.COUNTERS)


def test_logcounters_rails_and_counters_apart():
    got = logcounters.rails(LOG)
    assert got["tb1"]["state"] == "retired"
    assert got["tb1"]["bytes_sent"] == 800 and got["tb1"]["revived"] == 1
    assert got["tb0"]["state"] == "live"
    # the rail lines are not the link's "udp: " line
    assert logcounters.parse(LOG) == {"sent": 17, "received": 6, "busy": 0}
