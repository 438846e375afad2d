# The cffi extension _build_libfabric.py compiles (API mode): ffi and lib
# reach into libfabric's C declarations (cdefs/*.h), which no Python type
# describes; fabric.py and info.py give their own API its types.
from typing import Any

ffi: Any
lib: Any
