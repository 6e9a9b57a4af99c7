"""Converts an old Word / WPS file to .docx (or a WPS sheet to .xlsx) with LibreOffice.

LibreOffice is a large C++ program fed hostile bytes, so it runs boxed: its own process
group killed at a time limit below the parser worker's, an address-space and CPU limit,
a throwaway profile, an environment with nothing but PATH and a private HOME, and a
private temporary folder for input and output that is removed afterwards. It is given
no URL and left to detect the input format itself (no forced filter).
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from config.settings import LimitsSettings
from parsers.grid import FileRejected
from parsers.model import ProblemCode

SOFFICE_NAMES = ("soffice", "libreoffice")
MEMORY_BYTES = 2 * 1024**3  # address space; LibreOffice maps ~1 GB before it reads a byte
# Of the worker's per-file time: the rest is left for reading the converted file.
TIME_SHARE = 0.6
MIN_SECONDS = 5.0
OUTPUT_LIMIT_BYTES = 256 * 1024**2
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ConverterMissing(Exception):
    """LibreOffice is not installed on this machine."""


def soffice_path() -> str | None:
    return next((found for found in map(shutil.which, SOFFICE_NAMES) if found), None)


def convert(data: bytes, suffix: str, target: str, limits: LimitsSettings) -> bytes:
    """The file converted to `target` ("docx" or "xlsx"); `suffix` names the input's type
    as its bytes showed it ("doc", "xls", "wps", …) for LibreOffice's detection."""
    soffice = soffice_path()
    if soffice is None:
        raise ConverterMissing
    seconds = max(MIN_SECONDS, limits.seconds_per_file * TIME_SHARE)
    with tempfile.TemporaryDirectory(prefix="intake-convert-") as work:
        root = Path(work)
        source, out, profile = root / f"input.{suffix}", root / "out", root / "profile"
        out.mkdir()
        source.write_bytes(data)
        command = [soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--invisible",
                   "--nologo", "--norestore", "--nolockcheck", "--convert-to", target, "--outdir", str(out), str(source)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "TMPDIR": str(root),
               "LANG": "C.UTF-8", "SAL_USE_VCLPLUGIN": "svp"}
        _run(command, env, root, seconds)
        produced = out / f"input.{target}"
        if not produced.is_file() or produced.stat().st_size == 0:
            raise FileRejected(ProblemCode.UNREADABLE_FILE, "无法转换为可读取的格式，文件可能已损坏")
        if produced.stat().st_size > OUTPUT_LIMIT_BYTES:
            raise FileRejected(ProblemCode.TOO_LARGE, "转换后的文件过大，超出处理上限")
        return produced.read_bytes()


def _run(command: list[str], env: dict[str, str], cwd: Path, seconds: float) -> None:
    process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=lambda: _limit(seconds))  # noqa: PLW1509 - only setrlimit, no locks
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        raise FileRejected(ProblemCode.UNREADABLE_FILE, f"转换超过 {seconds:.0f} 秒仍未完成，已停止") from None
    finally:
        # soffice starts soffice.bin in the same group: end them all, whatever happened.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _limit(seconds: float) -> None:
    """In the child before exec: bounds the kernel enforces even if the parent dies."""
    # Killed with the worker (the supervisor kills a worker that overruns its file's time).
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    for kind, bound in ((resource.RLIMIT_AS, MEMORY_BYTES), (resource.RLIMIT_CPU, int(seconds) + 1),
                        (resource.RLIMIT_FSIZE, OUTPUT_LIMIT_BYTES), (resource.RLIMIT_CORE, 0)):
        _, hard = resource.getrlimit(kind)
        bound = bound if hard == resource.RLIM_INFINITY else min(bound, hard)  # a limit may only shrink
        resource.setrlimit(kind, (bound, bound))
