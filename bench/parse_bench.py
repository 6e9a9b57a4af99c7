"""Per-file parse time for a typical submission's files, next to plain library reads.

Run: `python bench/parse_bench.py [--runs N] [--ocr-runs N]`. Prints a table and writes
bench/PARSE_RESULTS.md. Times are warm (one untimed run first), in milliseconds.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openpyxl  # noqa: E402
import python_calamine  # noqa: E402
import xlrd  # noqa: E402

from config.settings import LimitsSettings, ParsingSettings  # noqa: E402
from parsers.dispatch import parse_file  # noqa: E402
from tests.fixtures import forms, scans  # noqa: E402
from tests.support.campaigns import DEFAULT_FORMS  # noqa: E402

LIMITS = LimitsSettings()


def openpyxl_rows(data: bytes) -> None:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    for sheet in book.worksheets:
        for _ in sheet.iter_rows(values_only=True):
            pass
    book.close()


def calamine_rows(data: bytes) -> None:
    book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    for name in book.sheet_names:
        book.get_sheet_by_name(name).to_python()


def xlrd_rows(data: bytes) -> None:
    book = xlrd.open_workbook(file_contents=data)
    for sheet in book.sheets():
        for r in range(sheet.nrows):
            sheet.row_values(r)


def intake(name: str, parsing: ParsingSettings) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        report = parse_file(data, name, limits=LIMITS, parsing=parsing, forms=DEFAULT_FORMS)
        assert report.forms or report.pdf, report.problems

    return run


def measure(work: Callable[[bytes], None], data: bytes, runs: int) -> tuple[float, float]:
    work(data)  # warm: imports, engine load, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work(data)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95


def machine() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--ocr-runs", type=int, default=5)
    args = parser.parse_args()
    xlsx, xls, docx = forms.notice_xlsx(1), forms.xls(forms.form_sheet(1)), forms.docx_file(forms.form_sheet(1))
    scan = scans.two_page_scan()
    seal_only, with_ocr = ParsingSettings(seal_detection=True, ocr=False), ParsingSettings(seal_detection=True, ocr=True)
    cases = [
        ("xlsx, plain openpyxl (load + all rows)", openpyxl_rows, xlsx, args.runs),
        ("xlsx, plain python-calamine", calamine_rows, xlsx, args.runs),
        ("xlsx, intake parse_file", intake("汇总表.xlsx", seal_only), xlsx, args.runs),
        ("xls, plain xlrd (load + all rows)", xlrd_rows, xls, args.runs),
        ("xls, plain python-calamine", calamine_rows, xls, args.runs),
        ("xls, intake parse_file", intake("汇总表.xls", seal_only), xls, args.runs),
        ("docx, intake parse_file", intake("汇总表.docx", seal_only), docx, args.runs),
        ("2-page scanned PDF, seal detection", intake("盖章版.pdf", seal_only), scan, args.runs),
        ("2-page scanned PDF, seal + OCR", intake("盖章版.pdf", with_ocr), scan, args.ocr_runs),
    ]
    rows = []
    for label, work, data, runs in cases:
        median, p95 = measure(work, data, runs)
        rows.append((label, len(data), runs, median, p95))
        print(f"{label:42s} {len(data) / 1024:8.1f} KB  n={runs:3d}  median {median:9.2f} ms  p95 {p95:9.2f} ms",
              flush=True)
    lines = [
        "# Parse benchmark",
        "",
        f"Machine: {machine()}.",
        f"Command: `python bench/parse_bench.py --runs {args.runs} --ocr-runs {args.ocr_runs}`; warm"
        " (one untimed run first), times in ms.",
        "",
        "| file and reader | size | runs | median ms | p95 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {label} | {size / 1024:.1f} KB | {runs} | {median:.2f} | {p95:.2f} |"
          for label, size, runs, median, p95 in rows),
        "",
    ]
    out = ROOT / "bench" / "PARSE_RESULTS.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
