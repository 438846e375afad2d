"""Only here because cffi_modules is a setup() keyword: everything else is in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["usb4fabric/_build_libfabric.py:ffi"])
