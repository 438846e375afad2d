"""Helpers of the binding tests: which providers, and a pair of endpoints."""

import pytest

from usb4fabric import info as fi_info
from usb4fabric._libfabric import lib
from usb4fabric.errors import NoData
from usb4fabric.fabric import Fabric

# provider under test -> get_info keywords; tcp;ofi_rxm is the control
PROVIDERS = {
    "usb4": {},
    "tcp;ofi_rxm": {"node": "127.0.0.1", "flags": lib.FI_SOURCE},
}


def open_info(provider, **hints):
    """The first fi_info of provider, or skip (control providers only) if absent."""
    try:
        return fi_info.get_info(provider, **PROVIDERS[provider], **hints)[0]
    except NoData:
        if provider == "usb4":
            raise
        pytest.skip(f"libfabric offers no {provider} RDM endpoint here "
                    f"{'with ' + str(hints) if hints else ''}")


class Pair:
    """Two endpoints of one domain that know each other: a sends to b at ab,
    b to a at ba. Both CQs are progressed while either side waits."""

    def __init__(self, info):
        self.fabric = Fabric(info)
        self.domain = self.fabric.domain()
        self.a = self.domain.endpoint()
        self.b = self.domain.endpoint()
        self.ab = self.a.insert(self.b.name)
        self.ba = self.b.insert(self.a.name)

    def wait(self, ep, count=1, side="rx", **kw):
        cq = ep.rx_cq if side == "rx" else ep.tx_cq
        others = {id(e.tx_cq): e.tx_cq for e in (self.a, self.b)}
        others.update({id(e.rx_cq): e.rx_cq for e in (self.a, self.b)})
        others.pop(id(cq))
        return cq.wait(count, progress=list(others.values()), **kw)

    def close(self):
        self.fabric.close()
