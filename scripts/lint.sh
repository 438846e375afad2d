#!/usr/bin/env bash
# The Python checks: ruff (lint rules in python/pyproject.toml) over the
# package, bench/ and tests/, then mypy over the usb4fabric package.  Exits
# non-zero on any finding.  scripts/test.sh runs it first; run it alone
# before landing Python changes.  No `ruff format`: the code keeps its layout.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[lint] %s\n' "$*"; }

say "ruff check --config python/pyproject.toml python bench tests ($(python3 -m ruff --version))"
python3 -m ruff check --config python/pyproject.toml python bench tests
say "mypy, in python/ (packages = usb4fabric) ($(python3 -m mypy --version))"
(cd python && python3 -m mypy)
