"""The results folder: tidy table, run records, metadata, raw outputs.

Layout of a results folder (``usb4bench run --output DIR``)::

    DIR/metadata.json        the run as a whole: command, versions, hosts, env, start
    DIR/results.csv          tidy: one row per fabric, benchmark, size, metric, repetition
    DIR/runs.csv             one row per mpirun: status, error, argv, files
    DIR/raw/<fabric>/<benchmark>/rep<N>.{cmd,out,err}   raw outputs

results.csv and runs.csv are appended to after every run (and flushed), so an
interrupted run keeps what it measured.  Loading checks every line and raises
ResultsFileError naming the file and the line.

Where the ranks ran, and what a reader calls each line (usb4fabric.placement):
every results.csv and runs.csv row carries ``placement`` (``cable``: two
namespace hosts over a veth cable, ``usb4bench run --cable``; ``hosts``:
``--hosts``/``--hostfile``; ``same-host``) and ``series`` (e.g. "usb4 — 2
hosts, udp link over a veth cable", "Ethernet — libfabric tcp, 2 hosts",
"usb4 — same host, shm link"), and metadata.json has ``placement``.  A
report groups by ``series`` (one line or column each) and sections by
``placement`` in ``placement.REPORT_ORDER``: the cable first.  A cable run
that could not be made (not root, no ``ip netns``) writes a folder all the
same: metadata ``placement_missing`` says why, and every profile x benchmark
is a ``skipped`` run with that reason.  Folders written before these
columns existed load with them filled in from metadata's ``origin``
(``here`` -> same-host, ``hosts`` -> hosts).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pandas as pd

from . import placement as where

# the columns every folder has had; PLACED_COLUMNS came later (filled on load)
_FIRST_RESULT_COLUMNS = ["fabric", "benchmark", "program", "size", "metric", "value", "unit",
                         "repetition", "validation", "origin", "hosts", "carrier", "note"]
PLACED_COLUMNS = ["placement", "series"]
RESULT_COLUMNS = _FIRST_RESULT_COLUMNS + PLACED_COLUMNS
RUN_COLUMNS = ["fabric", "benchmark", "repetition", "status", "error", "returncode",
               "elapsed_s", "start", "rows", "unparsed_lines", "osu_title", "osu_version",
               "carrier", "note", "argv", "cmd_file", "stdout_file", "stderr_file",
               *PLACED_COLUMNS]
STATUSES = ("ok", "failed", "timeout", "no-data", "missing", "skipped", "invalid")
METADATA = "metadata.json"
RESULTS = "results.csv"
RUNS = "runs.csv"


class ResultsFileError(ValueError):
    """A results or reference file that cannot be read, with file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line = Path(path), line
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


class _Appender:
    """A CSV file written one row at a time, header first."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        if not path.exists() or path.stat().st_size == 0:
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(columns)

    def add(self, rows: list[dict]) -> None:
        with self.path.open("a", newline="") as f:
            out = csv.DictWriter(f, self.columns, extrasaction="ignore")
            for row in rows:
                out.writerow({k: "" if row.get(k) is None else row.get(k)
                              for k in self.columns})
            f.flush()


def previous_run(folder: Path) -> str | None:
    """What of an earlier run the folder holds (its files, comma-separated), or None.

    A new run appends to results.csv and runs.csv, so writing one into a
    folder that holds another would mix the two runs' rows under the new
    run's metadata.
    """
    held = [name for name in (RESULTS, RUNS, METADATA, "raw") if (Path(folder) / name).exists()]
    return ", ".join(held) or None


def discard_run(folder: Path) -> None:
    """Remove an earlier run's files from folder (nothing else in it)."""
    folder = Path(folder)
    for name in (RESULTS, RUNS, METADATA):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / "raw", ignore_errors=True)


class ResultsWriter:
    """Writes a results folder as the run goes."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.results = _Appender(self.folder / RESULTS, RESULT_COLUMNS)
        self.runs = _Appender(self.folder / RUNS, RUN_COLUMNS)

    def raw_stem(self, fabric: str, benchmark: str, repetition: int) -> Path:
        folder = self.folder / "raw" / fabric / benchmark
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"rep{repetition}"

    def write_metadata(self, metadata: dict) -> None:
        path = self.folder / METADATA
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n")
        tmp.replace(path)

    def add_run(self, run: dict, rows: list[dict]) -> None:
        self.results.add(rows)
        self.runs.add([run])


def _read_csv_checked(path: Path, required: list[str], numeric: dict[str, bool]) -> pd.DataFrame:
    """Read a CSV checking every line; numeric maps column -> may be empty."""
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise ResultsFileError(path, 1, "empty file, expected a header") from None
            missing = [c for c in required if c not in header]
            if missing:
                raise ResultsFileError(path, 1, f"header lacks column(s) {', '.join(missing)}")
            records = []
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise ResultsFileError(path, line, f"{len(row)} fields, the header "
                                           f"has {len(header)}")
                text = dict(zip(header, row))
                record: dict[str, str | float] = dict(text)
                for column, may_be_empty in numeric.items():
                    cell = text.get(column, "").strip()
                    if not cell and may_be_empty:
                        record[column] = math.nan
                        continue
                    try:
                        record[column] = float(cell)
                    except ValueError:
                        raise ResultsFileError(path, line, f"column {column!r}: "
                                               f"{cell!r} is not a number") from None
                records.append(record)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsFileError(path, None, str(exc)) from None
    return pd.DataFrame.from_records(records, columns=header)


def load_results(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(results, runs, metadata) of a results folder; ResultsFileError if bad."""
    folder = Path(folder)
    meta_path = folder / METADATA
    if not folder.is_dir():
        raise ResultsFileError(folder, None, "not a results folder")
    try:
        metadata = json.loads(meta_path.read_text())
    except OSError as exc:
        raise ResultsFileError(meta_path, None, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(meta_path, exc.lineno, exc.msg) from None
    results = _read_csv_checked(folder / RESULTS, _FIRST_RESULT_COLUMNS,
                                {"size": True, "value": False, "repetition": False})
    runs = _read_csv_checked(folder / RUNS, RUN_COLUMNS[:4], {"repetition": False})
    for df in (results, runs):
        _fill_placement(df, metadata)
    results["size"] = results["size"].astype("Int64")
    results["repetition"] = results["repetition"].astype(int)
    runs["repetition"] = runs["repetition"].astype(int)
    for df in (results, runs):
        df["results_dir"] = str(folder)
    return results, runs, metadata


def _fill_placement(df: pd.DataFrame, metadata: dict) -> None:
    """placement and series of a folder written before they were columns."""
    placed = metadata.get("placement") or where.of_run(metadata.get("origin") == "hosts")
    hosts = str(metadata.get("hosts") or "")
    n_hosts = len(hosts.split(",")) if placed == where.HOSTS and "," in hosts else None
    if "placement" not in df.columns:
        df["placement"] = placed
    if "series" not in df.columns:
        df["series"] = [where.series_name(f, placed, n_hosts,
                                          stack_title=metadata.get("mpi_stack"))
                        for f in df["fabric"]]


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Median, min and max over repetitions per fabric, benchmark, size, metric."""
    if results.empty:
        return pd.DataFrame(columns=["fabric", "benchmark", "size", "metric", "unit",
                                     "median", "min", "max", "n"])
    keys = ["fabric", "benchmark", "size", "metric", "unit"]
    grouped = results.groupby(keys, dropna=False)["value"]
    out = grouped.agg(["median", "min", "max", "count"]).reset_index()
    return out.rename(columns={"count": "n"})


def median_at(summary: pd.DataFrame, series: str, benchmark: str, metric: str,
              size: int | None) -> float | None:
    """The median in a by-series summary (summarize with series for fabric) of one
    series' benchmark, metric and size (None: the rows without a size), or None."""
    at = summary["size"].isna() if size is None else (summary["size"] == size).fillna(False)
    hit = summary[(summary["series"] == series) & (summary["benchmark"] == benchmark)
                  & (summary["metric"] == metric) & at]
    return float(hit["median"].iloc[0]) if len(hit) else None
