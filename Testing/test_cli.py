"""The command line: segment, bench, and one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from SegAnyPETLib.cli import main


@pytest.fixture
def pet_file(tmp_path, blob_image):
    path = tmp_path / "pet.nii.gz"
    sitk.WriteImage(blob_image, str(path))
    return path


def test_segment_writes_a_mask_on_the_input_grid(tmp_path, pet_file, tiny_checkpoint, capsys):
    out = tmp_path / "mask.nii.gz"
    args = ["segment", str(pet_file), "-o", str(out), "--model", str(tiny_checkpoint), "--device", "cpu",
            "--point", "24,20,18", "--negative", "30,20,18"]
    assert main(args) == 0
    mask, image = sitk.ReadImage(str(out)), sitk.ReadImage(str(pet_file))
    assert mask.GetSize() == image.GetSize() and mask.GetSpacing() == image.GetSpacing()
    assert mask.GetOrigin() == image.GetOrigin() and mask.GetPixelID() == sitk.sitkUInt8
    assert "voxels" in capsys.readouterr().out
    # The same point in RAS millimetres gives the same mask.
    lps = np.array(image.TransformIndexToPhysicalPoint((24, 20, 18)))
    neg = np.array(image.TransformIndexToPhysicalPoint((30, 20, 18)))
    # "--point=" so that argparse takes a leading minus sign as part of the value
    ras = ["--point=" + ",".join(str(v) for v in lps * [-1, -1, 1]), "--negative=" + ",".join(str(v) for v in neg * [-1, -1, 1])]
    out_ras = tmp_path / "mask_ras.nii.gz"
    assert main(["segment", str(pet_file), "-o", str(out_ras), "--model", str(tiny_checkpoint), "--device", "cpu",
                 "--space", "ras", *ras]) == 0
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out_ras))), sitk.GetArrayFromImage(mask))
    # A higher mask threshold keeps a subset of the voxels.
    out_high = tmp_path / "mask_high.nii.gz"
    assert main([*args[:3], str(out_high), *args[4:], "--set", "mask_threshold=0.9"]) == 0
    high = sitk.GetArrayFromImage(sitk.ReadImage(str(out_high))).astype(bool)
    assert not np.any(high & ~sitk.GetArrayFromImage(mask).astype(bool))
    # --lesion (bundled): the focal uptake at the point, one connected region holding it, the negative point out.
    out_lesion = tmp_path / "mask_lesion.nii.gz"
    assert main([*args[:3], str(out_lesion), *args[4:], "--preset", "bundled", "--lesion"]) == 0
    lesion = sitk.GetArrayFromImage(sitk.ReadImage(str(out_lesion))).astype(bool)
    assert lesion[18, 20, 24] and not lesion[18, 20, 30] and ndimage.label(lesion)[1] == 1
    values = sitk.GetArrayFromImage(image)
    assert values[lesion].min() > np.median(values)


def test_segment_errors_are_one_line_and_nothing_is_overwritten(tmp_path, pet_file, tiny_checkpoint, capsys):
    out = tmp_path / "mask.nii.gz"
    out.write_text("precious")
    nan_file, garbage = tmp_path / "nan.nii.gz", tmp_path / "garbage.pt"
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(pet_file)))
    values[1, 1, 1] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(values), str(nan_file))  # NIfTI: ITK 5 alone would read 0
    garbage.write_bytes(b"garbage")
    base = ["segment", str(pet_file), "-o", str(out), "--model", str(tiny_checkpoint), "--device", "cpu"]
    cases = [
        (base + ["--point", "1,1,1"], "already exists"),
        (["segment", str(tmp_path / "none.nii.gz"), "-o", str(tmp_path / "m.nii.gz"), "--point", "1,1,1"], "does not exist"),
        (["segment", str(tmp_path), "-o", str(tmp_path / "m.nii.gz"), "--point", "1,1,1"], "is a folder"),
        (["segment", str(pet_file), "-o", str(tmp_path / "m.nii.gz"), "--model", str(tiny_checkpoint)], "at least one positive"),
        (["segment", str(pet_file), "-o", str(tmp_path / "m.nii.gz"), "--model", str(tiny_checkpoint), "--point", "99,1,1"],
         "outside the volume"),
        (["segment", str(nan_file), "-o", str(tmp_path / "m.nii.gz"), "--model", str(tiny_checkpoint), "--point", "1,1,1"],
         f"PET image {nan_file} contains 1 NaN"),
        (["segment", str(pet_file), "-o", str(tmp_path / "m.nii.gz"), "--model", str(garbage), "--point", "1,1,1"],
         f"cannot read checkpoint {garbage}: corrupt or not a PyTorch checkpoint (Unsupported operand"),
        (base[:3] + [str(tmp_path / "m.nii.gz")] + base[4:] + ["--point", "1,1,1", "--set", "mask_threshold=1.5"],
         "inference option mask_threshold must lie between 0 and 1"),
        (base[:3] + [str(tmp_path / "m.nii.gz")] + base[4:] + ["--point", "1,1,1", "--set", "mirrored=yes"],
         "unknown inference option(s) mirrored"),
        (base[:3] + [str(tmp_path / "m.nii.gz")] + base[4:] + ["--point", "1,1,1", "--set", "max_crops=two"],
         "inference option max_crops must be a whole number, got 'two'"),
        (base[:3] + [str(tmp_path / "m.nii.gz")] + base[4:] + ["--point", "1,1,1", "--lesion"],
         "the official config has no lesion refiners"),
        (base[:3] + [str(tmp_path / "m.nii.gz")] + base[4:] + ["--point", "1,1,1", "--negative", "1,1,1"],
         "a positive and a negative point on the same voxel"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert out.read_text() == "precious"
    with pytest.raises(SystemExit):
        main(["segment", str(pet_file), "-o", str(out), "--point", "1,2"])


def test_segment_clicks_the_points_in_the_order_given(tmp_path, pet_file, tiny_checkpoint):
    """--point and --negative interleaved are clicked in command-line order, as the session's add_click."""
    from SegAnyPETLib.checkpoints import load_model
    from SegAnyPETLib.session import InteractiveSession

    clicks = [((24, 20, 18), True), ((30, 20, 18), False), ((20, 18, 14), True)]
    out = tmp_path / "mask.nii.gz"
    argv = [f"--{'point' if positive else 'negative'}={','.join(map(str, p))}" for p, positive in clicks]
    assert main(["segment", str(pet_file), "-o", str(out), "--model", str(tiny_checkpoint), "--device", "cpu", *argv]) == 0
    session = InteractiveSession(load_model(tiny_checkpoint, "cpu"), device="cpu")
    session.set_image(sitk.ReadImage(str(pet_file)))
    for point, positive in clicks:
        expected = session.add_click(point, positive)
    session.new_object()
    for point, positive in sorted(clicks, key=lambda c: not c[1]):  # positives first: another mask
        reordered = session.add_click(point, positive)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), expected)
    assert not np.array_equal(reordered, expected)


def test_bench_reports_embedding_clicks_per_preset_and_memory(capsys):
    assert main(["bench", "--model", "random:tiny", "--repeats", "1", "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    result = report["models"][0]
    for key in ("embed_ms", "official_click_ms", "peak_rss_mb"):
        assert result[key] > 0
    assert [row["preset"] for row in result["presets"]] == ["official"]  # the model's own is official: one row
    row = result["presets"][0]
    assert row["first_click_encoder_runs"] == 1 and row["first_click_ms"] > row["later_click_ms"] > 0
    assert main(["bench", "--model", "random:tiny", "--repeats", "1", "--device", "cpu", "--json", "--preset", "bundled"]) == 0
    assert [row["preset"] for row in json.loads(capsys.readouterr().out)["models"][0]["presets"]] == ["bundled"]
    assert report["statistics"]["label_image_s"] > 0 and report["statistics"]["segments"] == 15
