"""intake.stages: the benchmark's per-stage counters (off unless INTAKE_STAGES names a folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from intake import stages


def test_off_it_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "ENABLED", False)

    def work() -> int:
        return 1

    assert stages.timing("x")(work) is work
    with stages.timed("y"):
        pass
    assert list(stages.timed_iter("z", [1, 2])) == [1, 2]
    stages.flush()  # writes nothing anywhere


def test_on_it_sums_per_stage_and_writes_one_file_per_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "ENABLED", True)
    monkeypatch.setattr(stages, "_DIR", str(tmp_path))
    for name in ("_seconds", "_counts", "_events"):
        monkeypatch.setattr(stages, name, {})
    timed = stages.timing("call")(lambda value: value * 2)
    assert timed(2) == 4 and timed(3) == 6
    with stages.timed("block"):
        pass
    assert list(stages.timed_iter("fetch", iter("ab"))) == ["a", "b"]
    stages.event("stored")
    stages.flush()
    (tmp_path / "stages-1.json").write_text('{"peak_rss_mb": 7.0, "argv0": "-c", "stages": '
                                            '{"call": {"seconds": 1.0, "count": 5}}, "events": {"stored": [1.0]}}')
    totals, events, peaks = stages.collect(tmp_path, main_pid=os.getpid())
    assert totals["call"]["count"] == 7
    assert totals["call"]["by"]["parser"] == {"seconds": 1.0, "count": 5}
    assert totals["call"]["by"]["poller"]["count"] == 2
    assert totals["fetch"]["count"] == 2 and totals["block"]["count"] == 1
    assert events["stored"][0] == 1.0 and len(events["stored"]) == 2
    assert peaks[1] == 7.0 and peaks[os.getpid()] > 0


def test_flush_soon_writes_at_most_once_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "ENABLED", True)
    monkeypatch.setattr(stages, "_DIR", str(tmp_path))
    monkeypatch.setattr(stages, "_flushed_at", 0.0)
    written = tmp_path / f"stages-{os.getpid()}.json"
    stages.flush_soon()
    assert written.exists()
    written.unlink()
    stages.flush_soon()  # within the second: nothing written
    assert not written.exists()


def test_a_closed_parser_process_writes_its_last_sums_at_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from config.settings import LimitsSettings, ParsingSettings
    from intake.sandbox import ParseWorker
    from tests.support import hostile as h
    from tests.support.campaigns import DEFAULT_FORMS

    monkeypatch.setenv("INTAKE_STAGES", str(tmp_path))  # read by the worker at its start
    worker = ParseWorker(LimitsSettings(), ParsingSettings(seal_detection=False), DEFAULT_FORMS)
    try:
        for _ in range(2):  # the second answer comes within the first's second: not flushed then
            assert worker.parse(h.form1_xlsx(), "汇总表.xlsx").forms
        pid = worker.pid
    finally:
        worker.close()
    totals, _, _ = stages.collect(tmp_path)
    assert (tmp_path / f"stages-{pid}.json").exists()
    assert totals["parse xlsx (parser)"]["count"] == 2
