"""Tables under names that lie, and old Word/WPS files: sniffed by content, read through
form recognition, LibreOffice boxed; each shape also end to end through a real Dovecot."""

from __future__ import annotations

import datetime as dt
import json
import stat
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import LimitsSettings
from intake.app import App
from intake.export import export_document
from intake.runs import poll_once
from intake.samples import mime_message
from parsers import convert
from parsers.grid import FileRejected
from parsers.model import FileKind, ProblemCode
from tests.fixtures import forms as fx
from tests.fixtures import shapes
from tests.fixtures.forms import codes, parse
from tests.support.dovecot import Dovecot
from tests.support.intake_env import DEADLINE, intake_settings, stamped_pdf

FORM1 = fx.form_sheet(1)
FORM2_SPANNED = fx.form_sheet(2, two_row_header=True)  # 预计参赛人数 over 初赛/决赛: rowspan and colspan


@dataclass(frozen=True)
class Shape:
    name: str
    build: Callable[[], bytes]
    kind: FileKind
    form: int


SHAPES = {
    "et_biff": Shape("附件1.et", lambda: fx.xls(FORM1), FileKind.XLS, 1),
    "ett_biff": Shape("附件1.ett", lambda: fx.xls(FORM1), FileKind.XLS, 1),
    "html_xls": Shape("附件2.xls", lambda: shapes.html_xls(FORM2_SPANNED), FileKind.HTML, 2),
    "mhtml_xls": Shape("附件2.xls", lambda: shapes.mhtml_xls(FORM2_SPANNED), FileKind.MHTML, 2),
    "spreadsheetml_xls": Shape("附件2.xls", lambda: shapes.spreadsheetml(FORM2_SPANNED), FileKind.SPREADSHEETML, 2),
    "tsv_gbk_xls": Shape("附件1.xls", lambda: shapes.tsv_gbk(FORM1), FileKind.CSV, 1),
    "doc": Shape("附件1.doc", lambda: shapes.word_doc(1), FileKind.DOC, 1),
    "wps": Shape("附件1.wps", lambda: shapes.word_doc(1), FileKind.DOC, 1),
}


def _expected_rows(form: int) -> int:
    return len(fx.SAMPLE_ROWS[form])


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_each_shape_is_read_as_the_form_it_holds(shape: Shape) -> None:
    report = parse(shape.build(), shape.name)
    (table,) = report.forms
    assert (report.kind, report.problems) == (shape.kind, [])
    assert (table.form, table.unit, len(table.rows)) == (fx.KEYS[shape.form], fx.UNIT, _expected_rows(shape.form))
    assert table.totals is not None and all(v is not None for v in table.totals.values())


def test_an_html_table_keeps_its_spanned_header_and_names_cells_as_excel_does() -> None:
    rows = [list(r) for r in fx.FORM2_ROWS]
    rows[1][4] = "约200"  # 初赛人数 of the second row
    report = parse(shapes.html_xls(fx.form_sheet(2, rows, two_row_header=True)), "附件2.xls")
    (problem,) = report.problems
    # Title, unit line, two header rows, then data: the second row is row 6; 初赛 is column F.
    assert (problem.code, problem.cell) == (ProblemCode.NON_NUMERIC, "附件2!F6")
    assert [r.values["prelim"] for r in report.forms[0].rows] == [300, None]


def test_a_span_bomb_in_an_html_table_is_too_large() -> None:
    bomb = ("<html><body><table>" + "<tr><td rowspan=5000 colspan=200>x</td></tr>" * 3
            + "</table></body></html>").encode()
    start = time.monotonic()
    assert codes(parse(bomb, "附件.xls")) == ["too_large"]
    assert time.monotonic() - start < 2


def test_spreadsheetml_with_an_entity_is_refused() -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
              b'<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"><Worksheet><Table><Row><Cell>'
              b'<Data>&b;</Data></Cell></Row></Table></Worksheet></Workbook>')
    assert codes(parse(laughs, "附件.xls")) == ["unreadable_file"]


def test_spreadsheetml_far_out_ss_index_is_too_large() -> None:
    far = (b'<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
           b'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"><Worksheet ss:Name="S"><Table>'
           b'<Row ss:Index="900000000"><Cell><Data ss:Type="String">x</Data></Cell></Row></Table></Worksheet></Workbook>')
    assert codes(parse(far, "附件.xls")) == ["too_large"]


def test_spreadsheetml_skips_hidden_sheets() -> None:
    report = parse(shapes.spreadsheetml(FORM2_SPANNED), "附件2.xml")
    assert [t.location for t in report.forms] == ["Sheet1"]


@pytest.mark.parametrize(("name", "data"), [
    ("ATT00001.htm", b"<html><body><table><tr><td>mail body</td></tr></table></body></html>"),
    ("readme.txt", "说明\t一\n第二行\t二\n".encode("gbk")),
])
def test_pages_and_text_under_their_own_names_are_not_taken_for_forms(name: str, data: bytes) -> None:
    report = parse(data, name)
    assert (report.kind, report.problems) == (FileKind.OTHER, [])


def test_a_dps_presentation_is_unsupported_and_asks_for_a_table() -> None:
    (problem,) = parse(shapes.dps(), "汇总.dps").problems
    assert problem.code is ProblemCode.UNSUPPORTED_FILE
    assert "《汇总.dps》" in problem.message and "xlsx" in problem.message


def test_without_libreoffice_an_old_word_file_asks_for_xlsx_or_docx(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    doc = shapes.word_doc(1)  # built by LibreOffice first: alone, this test has no cached copy
    monkeypatch.setenv("PATH", str(tmp_path))  # no soffice anywhere on it
    report = parse(doc, "附件1.doc")
    (problem,) = report.problems
    assert report.kind is FileKind.OTHER  # not counted as the editable file
    assert problem.code is ProblemCode.UNSUPPORTED_FILE
    assert "《附件1.doc》" in problem.message and "xlsx" in problem.message and "docx" in problem.message


# --- the LibreOffice box: a stand-in soffice records what it was given ----------------------


def _fake_soffice(directory: Path, body: str) -> None:
    script = directory / "soffice"
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_the_converter_runs_boxed_and_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bindir, record = tmp_path / "bin", tmp_path / "record.txt"
    bindir.mkdir()
    _fake_soffice(bindir, f"""
import json, os, resource, sys
json.dump({{"argv": sys.argv, "env": sorted(os.environ), "cwd": os.getcwd(),
           "as": resource.getrlimit(resource.RLIMIT_AS)[0], "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0]}},
          open({str(record)!r}, "w"))
""")
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("INTAKE_SECRET", "hunter2")
    with pytest.raises(FileRejected):  # the stand-in writes no output
        convert.convert(b"\xd0\xcf\x11\xe0", "doc", "docx", LimitsSettings(seconds_per_file=30))

    seen = json.loads(record.read_text())
    profile = next(a for a in seen["argv"] if a.startswith("-env:UserInstallation=file://"))
    assert profile.startswith(f"-env:UserInstallation=file://{seen['cwd']}/")
    assert not any(a.startswith(("--infilter", "http:", "https:", "ftp:")) for a in seen["argv"])
    assert seen["env"] == sorted(["HOME", "LANG", "PATH", "SAL_USE_VCLPLUGIN", "TMPDIR"])
    assert seen["as"] == convert.MEMORY_BYTES and 0 < seen["cpu"] <= 19
    assert not Path(seen["cwd"]).exists()


def test_a_converter_that_hangs_is_stopped_with_its_children(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bindir, child_pid = tmp_path / "bin", tmp_path / "child.pid"
    bindir.mkdir()
    # Like soffice starting soffice.bin: a child in the same process group, then a wait.
    _fake_soffice(bindir, f"""
import subprocess, time
child = subprocess.Popen(["/bin/sleep", "300"])
open({str(child_pid)!r}, "w").write(str(child.pid))
time.sleep(300)
""")
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setattr(convert, "MIN_SECONDS", 1.0)
    start = time.monotonic()
    with pytest.raises(FileRejected) as rejected:
        convert.convert(b"x", "doc", "docx", LimitsSettings(seconds_per_file=1))
    assert time.monotonic() - start < 5
    assert rejected.value.code is ProblemCode.UNREADABLE_FILE and "转换超过" in rejected.value.reason
    pid = int(child_pid.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel reaps the orphan via init; poll, do not assume
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_converters_time_limit_is_below_the_workers() -> None:
    limits = LimitsSettings()
    assert convert.MIN_SECONDS <= limits.seconds_per_file * convert.TIME_SHARE < limits.seconds_per_file


# --- end to end: a real Dovecot, the parser worker, the export -----------------------------


@pytest.fixture
def app(tmp_path: Path, dovecot: Dovecot) -> Iterator[tuple[App, Dovecot]]:
    mailbox = dovecot.add_user(f"formats-{uuid.uuid4().hex[:12]}@example.org")
    with App(intake_settings(tmp_path, dovecot=mailbox)) as application:
        yield application, mailbox


def _submit(app: App, mailbox: Dovecot, attachments: list[tuple[str, bytes]]) -> dict:
    when = DEADLINE - dt.timedelta(days=1)
    mailbox.append(mime_message(sender=("济南市总工会", "jinan@example.cn"), subject="济南市总工会竞赛项目申报",
                                body="请查收。\n济南市总工会", attachments=attachments, date=when), when)
    poll_once(app)
    with app.db.session() as session:
        (submission,) = export_document(session, app.settings)["submissions"]
    return submission


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_each_shape_through_the_mailbox_is_accepted_with_its_rows(app: tuple[App, Dovecot], shape: Shape) -> None:
    submission = _submit(*app, [(shape.name, shape.build()), ("盖章扫描件.pdf", stamped_pdf())])
    assert submission["status"] == "accepted"
    assert [(f["name"], f["kind"]) for f in submission["files"]] == [(shape.name, shape.kind.value),
                                                                      ("盖章扫描件.pdf", "pdf")]
    assert len(submission[f"form{shape.form}_rows"]) == _expected_rows(shape.form)
    assert (submission["has_editable"], submission["seal"]) == (True, True)
    assert [p["code"] for p in submission["problems"] if p["severity"] == "error"] == []


def test_a_dps_through_the_mailbox_is_incomplete_and_says_why(app: tuple[App, Dovecot]) -> None:
    submission = _submit(*app, [("汇总.dps", shapes.dps()), ("盖章扫描件.pdf", stamped_pdf())])
    assert submission["status"] == "incomplete"
    assert [f["kind"] for f in submission["files"]] == ["other", "pdf"]
    assert {"unsupported_file", "missing_editable"} <= {p["code"] for p in submission["problems"]}
    assert submission["form1_rows"] == submission["form2_rows"] == []
