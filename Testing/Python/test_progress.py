"""Progress reporters: the tqdm bar on a log file and on a terminal, and the JSON-lines protocol byte for byte."""

from __future__ import annotations

import io

import pytest

from RootletSegLogic.progress import (
    BarProgress,
    JsonProgress,
    ProgressEvent,
    QuietProgress,
    make_reporter,
)

EVENTS = [
    ProgressEvent("load", 0, 0, "reading t2.nii.gz"),
    ProgressEvent("load", 0, 0, "still reading"),
    ProgressEvent("predict", 0, 4),
    ProgressEvent("predict", 1, 4, "tile 1/4"),
    ProgressEvent("predict", 2, 4, "tile 2/4"),
    ProgressEvent("predict", 3, 4, "tile 3/4"),
    ProgressEvent("predict", 4, 4, "tile 4/4"),
    ProgressEvent("save", 1, 1, "écrit"),
]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_on_a_log_file_writes_the_start_and_end_of_each_stage_only():
    log = io.StringIO()
    bar = BarProgress(log)
    for event in EVENTS:
        bar(event)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and log.getvalue().endswith("\n")
    assert [line.split()[0] for line in lines] == ["load", "predict", "predict", "save"]
    assert lines[0].startswith("load       [00:00, reading t2.nii.gz]")  # unknown length: no bar, no counts
    assert "  0%|" in lines[1] and "| 0/4 [" in lines[1]
    assert "100%|" in lines[2] and "| 4/4 [" in lines[2] and lines[2].endswith(", tile 4/4]")
    assert "| 1/1 [" in lines[3] and lines[3].endswith(", écrit]")
    assert all(len(line) <= 80 for line in lines[1:3])
    bar_chars = lines[2][lines[2].index("|") + 1:lines[2].rindex("|")]
    assert set(bar_chars) == {"#"}  # ASCII in logs, full at the end


def test_bar_warning_and_results(capsys):
    log = io.StringIO()
    bar = BarProgress(log)
    bar.warning("the image is oblique")
    bar.result({"segmentation": "/tmp/a_seg.nii.gz", "sidecar": "/tmp/a_seg.json"})
    assert log.getvalue() == "warning: the image is oblique\n"
    out = capsys.readouterr()
    assert out.out == "segmentation: /tmp/a_seg.nii.gz\nsidecar: /tmp/a_seg.json\n"
    assert out.err == ""


def test_bar_on_a_terminal_redraws_in_place_and_ends_each_stage_on_its_own_line():
    screen = Terminal()
    bar = BarProgress(screen)
    for event in EVENTS[2:5]:
        bar(event)
    bar.warning("low contrast")
    for event in EVENTS[5:]:
        bar(event)
    text = screen.getvalue()
    assert "\r" in text and text.endswith("\n")
    assert "\rwarning: low contrast\n" in text  # the bar is lifted off its line, the warning gets a line of its own
    # drawn at the stage start, then (faster than tqdm's 0.1 s redraw interval) redrawn after the warning only
    assert text.index("\rpredict      0%|") < text.index("warning") < text.index("\rpredict     50%|")
    final_lines = [chunk.split("\r")[-1] for chunk in text.split("\n") if chunk.strip("\r ")]
    predict_end = [line for line in final_lines if line.startswith("predict")][-1]
    assert "100%|" in predict_end and "4/4" in predict_end and "tile 4/4" in predict_end
    assert final_lines[-1].startswith("save") and "1/1" in final_lines[-1]
    assert bar._bar is None  # every finished stage closed its tqdm bar


def test_bar_error_drops_the_live_bar_without_redrawing_it():
    screen = Terminal()
    bar = BarProgress(screen)
    bar(ProgressEvent("predict", 1, 4, "tile 1/4"))
    bar.error("cancelled", 130)
    before = screen.getvalue()
    del bar
    assert screen.getvalue() == before and "tile 1/4" not in before.rsplit("\r", 2)[-1]


def test_quiet_reporter_prints_no_progress(capsys):
    quiet = make_reporter("none")
    assert isinstance(quiet, QuietProgress)
    for event in EVENTS:
        quiet(event)
    quiet.result({"table": "/tmp/t.tsv"})
    out = capsys.readouterr()
    assert out.out == "table: /tmp/t.tsv\n" and out.err == ""
    assert isinstance(make_reporter("bar"), BarProgress) and isinstance(make_reporter("json"), JsonProgress)
    with pytest.raises(ValueError):
        make_reporter("fancy")


def test_json_lines_are_unchanged_byte_for_byte():
    """The protocol Slicer reads: compact separators, ASCII escapes, fraction rounded to 4 places."""
    stream = io.StringIO()
    json_progress = JsonProgress(stream)
    for event in EVENTS:
        json_progress(event)
    json_progress(ProgressEvent("predict", 1, 3, "tile 1/3"))
    json_progress(ProgressEvent("predict", 7, 3))  # done past total is reported as it came, fraction capped
    json_progress.warning('the "image" is oblique')
    json_progress.result({"segmentation": "/tmp/a b/ü_seg.nii.gz"})
    json_progress.error("cancelled", 130)
    assert stream.getvalue() == (
        '{"type":"progress","stage":"load","done":0,"total":0,"fraction":0.0,"message":"reading t2.nii.gz"}\n'
        '{"type":"progress","stage":"load","done":0,"total":0,"fraction":0.0,"message":"still reading"}\n'
        '{"type":"progress","stage":"predict","done":0,"total":4,"fraction":0.0,"message":""}\n'
        '{"type":"progress","stage":"predict","done":1,"total":4,"fraction":0.25,"message":"tile 1/4"}\n'
        '{"type":"progress","stage":"predict","done":2,"total":4,"fraction":0.5,"message":"tile 2/4"}\n'
        '{"type":"progress","stage":"predict","done":3,"total":4,"fraction":0.75,"message":"tile 3/4"}\n'
        '{"type":"progress","stage":"predict","done":4,"total":4,"fraction":1.0,"message":"tile 4/4"}\n'
        '{"type":"progress","stage":"save","done":1,"total":1,"fraction":1.0,"message":"\\u00e9crit"}\n'
        '{"type":"progress","stage":"predict","done":1,"total":3,"fraction":0.3333,"message":"tile 1/3"}\n'
        '{"type":"progress","stage":"predict","done":7,"total":3,"fraction":1.0,"message":""}\n'
        '{"type":"warning","message":"the \\"image\\" is oblique"}\n'
        '{"type":"result","outputs":{"segmentation":"/tmp/a b/\\u00fc_seg.nii.gz"}}\n'
        '{"type":"error","message":"cancelled","exit_code":130}\n'
    )
