"""``seganypet bench --slicer``: a click in a real offscreen Slicer slice view, from the mouse event to
the segment modified, first and later clicks per model, printed as a table; one line and exit status 2
where slicer-core is missing."""
from __future__ import annotations

import json
import sys

import pytest

from slicer_testing import phantom
from SegAnyPETLib.cli import main
from SegAnyPETLib.slicer_bench import SLICER_TABLE_COLUMNS


@pytest.fixture
def small_case(monkeypatch):
    """The benchmark on the Slicer tests' coarse phantom (80 x 56 x 175 voxels) instead of the whole-body one."""
    monkeypatch.setattr("SegAnyPETLib.bench.bench_case", lambda: phantom(3))
    return phantom(3)


def table_rows(text: str) -> list:
    """The cells of each row of the Markdown table in ``text`` (header first, separator left out)."""
    lines = [line for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_slicer_bench_prints_one_row_per_model_with_first_and_later_clicks(small_case, capsys):
    argv = ["bench", "--slicer", "--model", "random:tiny", "--model", "demo", "--repeats", "2", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "80 x 56 x 175 voxels" in out and "device cpu" in out
    header, *rows = table_rows(out)
    assert tuple(header) == SLICER_TABLE_COLUMNS
    assert [row[0] for row in rows] == ["random:tiny", "demo"]
    assert [row[1] for row in rows] == ["official", "bundled"]  # each model's own options
    for row in rows:
        values = dict(zip(header, row))
        assert float(values["first click ms"]) >= float(values["first: session ms"]) >= float(values["first: encoder ms"]) > 0
        assert float(values["later click ms"]) >= float(values["later: session ms"]) > 0
    # a later click inside the object's crops only decodes: at once, on the calling thread
    official, bundled = (dict(zip(header, row)) for row in rows)
    assert official["later in thread"] == "0/2" and bundled["later in thread"] == "0/2"
    assert float(official["first click ms"]) > float(official["later click ms"])


def test_slicer_bench_takes_the_preset_and_options_and_prints_json(small_case, capsys):
    argv = ["bench", "--slicer", "--model", "random:tiny", "--repeats", "1", "--device", "cpu",
            "--preset", "official", "--set", "max_crops=2", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    result = report["models"]["random:tiny"]
    assert result["preset"] == "official, changed: max_crops" and result["first_click_threaded"] is True
    assert len(result["later_click_ms_all"]) == 1 and report["case_size"] == list(small_case.image.GetSize())


def test_slicer_bench_without_slicer_core_is_one_line_and_status_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "slicer", None)  # as if the wheel were not installed: import fails
    assert main(["bench", "--slicer", "--model", "random:tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seganypet bench: error: --slicer needs the slicer-core wheel (pip install slicer-core)")
    assert len(err.splitlines()) == 1
