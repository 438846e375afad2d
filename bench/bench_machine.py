"""What machine a benchmark ran on, printed at the top of its output.

The CPU (model, AVX-512 or not: the provider's fast paths depend on it),
how the kernel accounts interrupt time (osu_bw -C's per-rank CPU seconds
depend on it), and which paths the provider says it took, if it logs them
at FI_LOG_LEVEL=info.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
from pathlib import Path

# Provider log lines that name a code path (CRC, portable, vector units).
PATH_WORDS = re.compile(r"crc|portable|avx|vpclmul|sse4|poly1305", re.I)


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def kernel_config(option: str) -> str:
    """'y', 'n' (unset) or 'unknown' for one CONFIG_ option of the running
    kernel (/proc/config.gz, else /boot/config-<release>)."""
    sources = [Path("/proc/config.gz"), Path("/boot/config-" + os.uname().release)]
    for src in sources:
        try:
            raw = src.read_bytes()
            text = (gzip.decompress(raw) if src.suffix == ".gz" else raw).decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(option + "="):
                return line.split("=", 1)[1]
            if line == f"# {option} is not set":
                return "n"
        return "n"
    return "unknown"


def irq_accounting_note() -> str:
    setting = kernel_config("CONFIG_IRQ_TIME_ACCOUNTING")
    if setting == "y":
        return ("CONFIG_IRQ_TIME_ACCOUNTING=y: irq/softirq time (network receive) "
                "is counted apart, not in the ranks' CPU s; the machine's busy s has it")
    if setting == "n":
        return ("CONFIG_IRQ_TIME_ACCOUNTING unset: irq/softirq time is charged to the "
                "task a tick interrupts (often a rank, e.g. veth receive on the "
                "sender's syscall); the machine's busy s has all of it")
    return "CONFIG_IRQ_TIME_ACCOUNTING: kernel config not readable"


def provider_paths(libdir: Path, portable: bool, timeout: float = 20.0) -> list[str]:
    """Lines the provider logs at FI_LOG_LEVEL=info about its code paths,
    from fi_info -p usb4 (empty if it logs none, or fi_info is missing)."""
    env = dict(os.environ, FI_PROVIDER_PATH=str(libdir), FI_PROVIDER="usb4",
               FI_LOG_LEVEL="info")
    if portable:
        env["FI_USB4_PORTABLE"] = "1"
    try:
        proc = subprocess.run(["fi_info", "-p", "usb4"], capture_output=True, text=True,
                              env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = (proc.stdout + proc.stderr).splitlines()
    return sorted({line.strip() for line in lines
                   if "usb4" in line and PATH_WORDS.search(line)})


def banner(libdir: Path, portable: bool) -> list[str]:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    flags = cpu_flags(info)
    avx512 = sorted(f for f in flags if f.startswith("avx512"))
    lines = [f"CPU: {cpu_model(info)}, {os.cpu_count()} CPUs, "
             + ("AVX-512 (" + " ".join(avx512) + ")" if avx512 else "no AVX-512")
             + (", vpclmulqdq" if "vpclmulqdq" in flags else "")
             + (", sse4_2" if "sse4_2" in flags else ""),
             irq_accounting_note()]
    paths = provider_paths(libdir, portable)
    if paths:
        lines += ["provider paths (FI_LOG_LEVEL=info):"] + ["  " + p for p in paths]
    else:
        lines.append("provider paths: the provider logs none at FI_LOG_LEVEL=info")
    return lines
