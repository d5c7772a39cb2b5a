"""The batch script (SegAnyPET/Scripts/batch_evaluate.py) with plain Python and slicer-core: the
outputs of `seganypet evaluate`, the same numbers, and clear failures."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from slicer_testing import model_source, write_phantom_dataset
from SegAnyPETLib.cli import main as seganypet

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "SegAnyPET" / "Scripts" / "batch_evaluate.py"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_phantom_dataset(tmp_path_factory.mktemp("data") / "Dataset900_Phantom")


def read_rows(path: Path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_batch_script_writes_the_evaluate_outputs_with_the_same_numbers(dataset, tmp_path):
    model = model_source(tmp_path)
    options = ["--data", str(dataset), "--model", model, "--clicks", "1,2", "--targets", "kidney_left", "--device", "cpu"]

    result = run_script(*options, "--out", str(tmp_path / "slicer"), "--quiet")

    assert result.returncode == 0, result.stderr
    out = tmp_path / "slicer"
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "kidney left" in summary and "3D Slicer logic" in summary
    rows = read_rows(out / "results.csv")
    assert [(r["case"], r["clicks"]) for r in rows] == [("PET_000", "1"), ("PET_000", "2"), ("PET_001", "1"), ("PET_001", "2")]
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)

    # the library's own command gives the same numbers for the same clicks
    assert seganypet(["evaluate", *options, "--out", str(tmp_path / "library")]) == 0
    library = read_rows(tmp_path / "library" / "results.csv")
    assert rows == library

    # results are never overwritten silently
    again = run_script(*options, "--out", str(out), "--quiet")
    assert again.returncode == 2 and "exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_batch_script_fails_clearly(tmp_path):
    # "--" first, as `Slicer --python-script batch_evaluate.py -- --data ...` passes it
    missing = run_script("--", "--data", str(tmp_path / "nowhere"), "--model", "demo", "--out", str(tmp_path / "out"))
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("batch_evaluate: error:") and "does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    usage = run_script("--data", str(tmp_path), "--out", str(tmp_path / "out"), "--clicks", "0")
    assert usage.returncode == 2 and "--clicks" in usage.stderr



def test_an_unexpected_failure_prints_its_traceback_then_one_line(tmp_path):
    program = (
        "import runpy, sys\n"
        f"main = runpy.run_path({str(SCRIPT)!r}, run_name='batch')['main']\n"
        "def evaluate(args):\n"
        "    raise KeyError('a bug')\n"
        "main.__globals__['evaluate'] = evaluate\n"
        f"sys.exit(main(['--data', {str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and 'line 4, in evaluate' in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "batch_evaluate: error: KeyError: 'a bug'"


def test_the_installed_script_finds_the_library_beside_it(tmp_path):
    """As CMake installs it: qt-scripted-modules/SegAnyPETScripts/batch_evaluate.py next to SegAnyPETLib."""
    modules = tmp_path / "qt-scripted-modules"
    (modules / "SegAnyPETScripts").mkdir(parents=True)
    installed = modules / "SegAnyPETScripts" / "batch_evaluate.py"
    installed.write_text(SCRIPT.read_text())
    (modules / "SegAnyPETLib").symlink_to(REPO / "SegAnyPETLib", target_is_directory=True)
    program = f"import runpy, sys; runpy.run_path({str(installed)!r}, run_name='batch'); print(sys.path[0])"
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(modules)
    assert "SegAnyPETScripts/batch_evaluate.py" in (REPO / "SegAnyPET" / "CMakeLists.txt").read_text()
