"""usb4fabric: a cffi binding of libfabric and the usb4bench harness.

Kept light on purpose: importing the package loads nothing. The binding lives in
usb4fabric.info (providers, fi_getinfo), usb4fabric.fabric (objects and data calls)
and usb4fabric.errors (exceptions, check()).
"""

__version__ = "0.1.0"
