"""SegAnyPETLogic on Slicer's real MRML logics (slicer-core wheel): clicks, edits, undo, other
segments (never modified unless asked, and undo brings them back), the segment editor's masking,
prompts saved with the segment, bad input (deleted target, volume without data), statistics."""
from __future__ import annotations

import ast
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk

from slicer_testing import model_source, organ_center_zyx, phantom
from SegAnyPETLib.checkpoints import bundled_models_dir, load_model
from SegAnyPETLib.errors import SegAnyPETError
from SegAnyPETLib.inference.config import PRESETS
from SegAnyPETLib.labels import LABELS
from SegAnyPETLib.session import InteractiveSession
from SegAnyPETLib.slicer_headless import headless_slicer
from SegAnyPETLib.slicer_logic import (
    PROMPTS_TAG,
    SegAnyPETLogic,
    addPromptNodes,
    addSegment,
    addVolumeFromImage,
    volumeIjkToRas,
    volumeSuvFactor,
)
from SegAnyPETLib.stats import COLUMNS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The model source (a checkpoint path or registry name)."""
    return model_source(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def network(model):
    """The loaded network, shared by the logic under test and the reference session."""
    return load_model(model, "cpu")


@pytest.fixture
def case():
    return phantom(3)


@pytest.fixture(scope="module")
def reference(network):
    """The library's session on the same image: what the segment must hold (embeddings cached across tests)."""
    session = InteractiveSession(network, device="cpu")
    session.set_image(phantom(3).image)
    return session


class Scene:
    """A PET volume, a segmentation with a target segment, the two point lists and the logic."""

    def __init__(self, model, case, segmentationFile=None):
        """``model``: a model source or a loaded network; ``segmentationFile``: a saved .seg.nrrd to load."""
        self.scene = headless_slicer()
        self.volume = addVolumeFromImage(case.image, "PET")
        self.segmentation = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
        if segmentationFile is None:
            self.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(self.volume)
            self.target = addSegment(self.segmentation, "liver")
        else:
            reader = slicer.vtkMRMLSegmentationStorageNode()
            reader.SetFileName(str(segmentationFile))
            assert reader.ReadData(self.segmentation)
            self.target = self.segmentation.GetSegmentation().GetSegmentIdBySegmentName("liver")
        self.segmentation.CreateDefaultDisplayNodes()
        self.positive, self.negative = addPromptNodes()
        self.logic = SegAnyPETLogic(model, "cpu")
        self.logic.setInputVolume(self.volume)
        self.logic.setTargetSegment(self.segmentation, self.target)
        self.logic.setPromptNodes(self.positive, self.negative)

    def ras(self, zyx):
        """World RAS of a voxel centre."""
        return list((volumeIjkToRas(self.volume) @ [zyx[2], zyx[1], zyx[0], 1.0])[:3])

    def segment(self, segmentId=None):
        return slicer.util.arrayFromSegmentBinaryLabelmap(self.segmentation, segmentId or self.target, self.volume)

    def click(self, zyx, positive=True):
        node = self.positive if positive else self.negative
        node.AddControlPointWorld(*self.ras(zyx))
        assert self.logic.lastError is None, self.logic.lastError


@pytest.fixture
def world(network, case):
    world = Scene(network, case)
    yield world
    world.logic.cleanup()


def expected_after(reference, world, clicks):
    """The reference session's mask after ``clicks`` ([(zyx, positive)]) from a new object."""
    reference.new_object()
    return reference.set_points([lps(world, zyx) for zyx, _ in clicks], [int(p) for _, p in clicks], space="lps")


def lps(world, zyx):
    return np.asarray(world.ras(zyx)) * [-1, -1, 1]


# ----------------------------------------------------------------------------------------- clicks
def test_clicks_write_the_session_result_into_the_target_segment(model, case, reference):
    world = Scene(model, case)  # the logic loads the model from its source
    liver = organ_center_zyx(case.label, LABELS["liver"])
    inside = (liver[0] + 2, liver[1], liver[2] + 1)

    world.click(liver)
    expected = expected_after(reference, world, [(liver, True)])
    assert expected.any(), "the test model predicts nothing: choose another test model"
    assert np.array_equal(world.segment(), expected)
    assert world.logic.timing["latency_ms"] > 0 and "encoder_ms" in world.logic.timing

    world.click(inside, positive=False)
    expected = reference.add_click(lps(world, inside), False, space="lps")
    assert np.array_equal(world.segment(), expected)
    stored = json.loads(_tag(world))
    assert [p["label"] for p in stored["points"]] == [1, 0]
    assert np.allclose(stored["points"][1]["ras"], world.ras(inside), atol=1e-3)
    assert stored["model"] == model
    world.logic.cleanup()


def test_options_reach_the_session_from_the_next_click(world, network, case):

    liver = organ_center_zyx(case.label, LABELS["liver"])
    world.logic.setOptions("bundled", max_crops=2, part_check=False, interior_crop=False)
    world.click(liver)
    expected_config = PRESETS["bundled"].replace(max_crops=2, part_check=False, interior_crop=False)
    assert world.logic._session.config == expected_config
    same = InteractiveSession(network, expected_config, device="cpu")
    same.set_image(case.image)
    expected = same.add_click(lps(world, liver), space="lps")
    assert np.array_equal(world.segment(), expected)
    # from the next click on; the segment and the session stay as they are (text values as --set gives them)
    world.logic.setOptions("bundled", mirror="true", max_crops="2", refiners="touching_islands")
    assert world.logic.overrides == {"mirror": True, "max_crops": 2, "refiners": ("touching_islands",)}
    assert not world.logic._session.config.mirror and np.array_equal(world.segment(), expected)
    config = world.logic.config  # what the next click runs with
    assert config.mirror and config.refiners == ("touching_islands",) and config.max_crops == 2 and config.interior_crop
    world.logic.setOptions("bundled", max_crops=2, part_check=False, interior_crop=False, refiners=["touching_islands"])
    world.click((liver[0] + 1, liver[1], liver[2]))  # (no mirroring: 8 encoder runs are not for a quick test)
    assert world.logic._session.config == expected_config.replace(refiners=("touching_islands",))
    # a refused change is one clear error and changes nothing
    for bad, message in (({"no_such_option": 1}, "unknown inference option"), ({"max_crops": "two"}, "must be a whole number"),
                         ({"refiners": "clicked_islands,no_refiner"}, "must be one of"), ({"edge_fraction": 2}, "between 0 and 1")):
        with pytest.raises(SegAnyPETError, match=message):
            world.logic.setOptions("official", **bad)
        assert world.logic.preset == "bundled" and world.logic.overrides["refiners"] == ("touching_islands",)
    with pytest.raises(SegAnyPETError, match="unknown preset"):
        world.logic.setOptions("no-such-preset")
    assert world.logic.baseConfig("official") == PRESETS["official"]
    assert world.logic.baseConfig(None) == world.logic.model.inference == PRESETS["official"]  # the checkpoint's own


def test_a_registry_models_own_options_are_known_without_loading_it():
    logic = SegAnyPETLogic("demo", "cpu")
    assert logic.registryModel and logic.baseConfig(None) == PRESETS["bundled"] and not logic.modelLoaded
    assert logic.baseConfig(None) == logic.model.inference  # the same as the loaded checkpoint's
    local = SegAnyPETLogic(str(bundled_models_dir() / "seganypet_demo_tiny.pt"), "cpu")
    assert not local.registryModel and local.baseConfig(None) == PRESETS["bundled"] and local.modelLoaded
    logic.cleanup()
    local.cleanup()


def test_lesion_mode_needs_lesion_refiners_and_says_so(world, case):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    world.click(liver)  # the official options (the test model's own): no lesion refiners
    with pytest.raises(SegAnyPETError, match="no lesion refiners"):
        world.logic.setLesion(True)
    assert not world.logic.lesion
    world.logic.setOptions(lesion_refiners=("clicked_islands", "focal_uptake"))
    world.logic.setLesion(True)
    world.click((liver[0] + 1, liver[1], liver[2]))
    assert world.logic._session.lesion and json.loads(_tag(world))["lesion"] is True
    world.logic.setOptions("official")  # options without lesion refiners: lesion mode goes off
    assert not world.logic.lesion


def _tag(world, segmentId=None):
    value = vtk.reference("")
    assert world.segmentation.GetSegmentation().GetSegment(segmentId or world.target).GetTag(PROMPTS_TAG, value)
    return str(value)


def test_moving_and_removing_points_replay_the_clicks(world, case, reference):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    second = (liver[0], liver[1] + 1, liver[2] - 2)
    moved = (liver[0] - 2, liver[1], liver[2] + 2)
    world.click(liver)
    world.click(second)

    # a drag: no prediction while the point moves, one when it is dropped
    before = world.segment()
    world.positive.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointStartInteractionEvent)
    world.positive.SetNthControlPointPositionWorld(1, *world.ras(moved))
    assert np.array_equal(world.segment(), before) and len(world.logic.prompts) == 2
    world.positive.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)
    expected = expected_after(reference, world, [(liver, True), (moved, True)])
    assert np.array_equal(world.segment(), expected)

    world.positive.SetNthControlPointPositionWorld(0, *world.ras(second))  # moved by a script
    expected = expected_after(reference, world, [(second, True), (moved, True)])
    assert np.array_equal(world.segment(), expected)

    world.positive.RemoveNthControlPoint(0)
    expected = expected_after(reference, world, [(moved, True)])
    assert np.array_equal(world.segment(), expected)
    assert np.allclose(world.logic.prompts[0][0], world.ras(moved))

    world.positive.RemoveAllControlPoints()
    assert not world.segment().any() and json.loads(_tag(world))["points"] == []
    assert world.logic.predictions == 6  # placed, placed, dropped, moved by a script, removed, all removed


def test_undo_restores_the_segment_and_the_points(world, case):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    world.click(liver)
    after_one = world.segment()
    world.click((liver[0] + 3, liver[1], liver[2]), positive=False)
    assert world.logic.canUndo
    world.logic.undo()
    assert np.array_equal(world.segment(), after_one)
    assert world.positive.GetNumberOfControlPoints() == 1 and world.negative.GetNumberOfControlPoints() == 0
    assert [p["label"] for p in json.loads(_tag(world))["points"]] == [1]  # the stored points too
    world.logic.undo()
    assert not world.segment().any() and world.positive.GetNumberOfControlPoints() == 0
    assert not world.logic.canUndo
    world.logic.undo()  # nothing left: no change
    assert not world.segment().any()


def test_a_click_outside_the_volume_is_refused_and_removed(world, case):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    world.click(liver)
    before = world.segment()
    world.negative.AddControlPointWorld(5000.0, 0.0, 0.0)
    assert isinstance(world.logic.lastError, SegAnyPETError) and "outside the volume" in str(world.logic.lastError)
    assert world.negative.GetNumberOfControlPoints() == 0 and world.positive.GetNumberOfControlPoints() == 1
    assert np.array_equal(world.segment(), before)


def test_bad_targets_are_refused(world):
    with pytest.raises(SegAnyPETError, match="no segment"):
        world.logic.setTargetSegment(world.segmentation, "no-such-segment")
    logic = SegAnyPETLogic("demo", "cpu")
    logic.setTargetSegment(world.segmentation, world.target)
    with pytest.raises(SegAnyPETError, match="input PET volume"):
        logic.reset()
    world.logic.cleanup()
    positive, negative = addPromptNodes("other")
    logic.setPromptNodes(positive, negative)
    positive.AddControlPointWorld(0.0, 0.0, 0.0)  # a click before a volume was chosen: refused
    assert isinstance(logic.lastError, SegAnyPETError) and "input PET volume" in str(logic.lastError)
    assert positive.GetNumberOfControlPoints() == 0
    logic.cleanup()


def test_a_deleted_target_segment_gives_a_clear_message(world, case):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    world.click(liver)
    world.segmentation.GetSegmentation().RemoveSegment(world.target)
    world.negative.AddControlPointWorld(*world.ras((liver[0] + 2, liver[1], liver[2])))
    assert isinstance(world.logic.lastError, SegAnyPETError) and "target segment was deleted" in str(world.logic.lastError)
    assert world.negative.GetNumberOfControlPoints() == 0  # the point went away with the message
    assert world.logic.clickProblem().startswith("the target segment was deleted")


def test_a_volume_without_image_data_keeps_selector_and_logic_in_step(world, case):
    empty = world.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "not loaded yet")
    world.logic.setInputVolume(empty)  # accepted, as a volume selector shows it
    assert world.logic.inputVolume is empty and "has no image data yet" in world.logic.clickProblem()
    world.positive.AddControlPointWorld(*world.ras(organ_center_zyx(case.label, LABELS["liver"])))
    assert "has no image data yet" in str(world.logic.lastError) and world.positive.GetNumberOfControlPoints() == 0
    empty.SetAndObserveImageData(world.volume.GetImageData())  # the data arrives
    empty.CopyOrientation(world.volume)
    assert world.logic.clickProblem() is None
    world.click(organ_center_zyx(case.label, LABELS["liver"]))
    assert world.segment().any()


def test_prompt_lists_are_reused_not_duplicated(world):
    count = world.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode")
    again = addPromptNodes()  # e.g. the module reloaded
    assert again == (world.positive, world.negative)
    assert world.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode") == count


# ----------------------------------------------------------------------------------------- other segments
def _fill(world, segmentId, mask):
    slicer.util.updateSegmentBinaryLabelmapFromArray(mask.astype(np.uint8), world.segmentation, segmentId, world.volume)


@pytest.mark.parametrize("mode", ["none", "visible", "all", "masking"])
def test_other_segments_change_only_as_asked_and_undo_brings_them_back(world, case, reference, mode):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    prediction = expected_after(reference, world, [(liver, True)]).astype(bool)
    # one segment overlapping half of the prediction, one far away, one overlapping but hidden
    overlap = np.zeros_like(prediction)
    overlap[:, :, : prediction.shape[2] // 2] = prediction[:, :, : prediction.shape[2] // 2]
    overlap[0:3] = True
    far = np.zeros_like(prediction)
    far[-3:] = True
    assert overlap.any() and (overlap & prediction).any() and not (far & prediction).any()
    hidden = overlap.copy()
    ids = {name: addSegment(world.segmentation, name) for name in ("kidney_left", "brain", "spleen")}
    for name, mask in zip(ids, (overlap, far, hidden)):
        _fill(world, ids[name], mask)
    world.segmentation.GetDisplayNode().SetSegmentVisibility(ids["spleen"], False)
    # The Segment Editor's own settings say "overwrite all": they do not decide for SegAnyPET's clicks.
    editor = world.scene.AddNode(slicer.vtkMRMLSegmentEditorNode())
    editor.SetSingletonTag("SegmentEditor")
    editor.SetOverwriteMode(editor.OverwriteAllSegments)
    if mode == "masking":
        editor.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedOutsideVisibleSegments)
    else:
        world.logic.setOverwriteMode(mode)
    assert world.logic.describeWriting().startswith({"none": "Other segments are not modified", "masking": "Other segments are not modified",
                                                     "visible": "The segment's voxels are removed from the visible",
                                                     "all": "The segment's voxels are removed from every"}[mode])

    world.click(liver)

    target = world.segment().astype(bool)
    kidney, brain, spleen = (world.segment(ids[n]).astype(bool) for n in ("kidney_left", "brain", "spleen"))
    assert np.array_equal(brain, far)  # never touched
    if mode == "masking":  # only voxels outside the visible segments are editable; nothing overwritten
        assert "outside visible segments" in world.logic.describeWriting()
        assert np.array_equal(target, prediction & ~overlap & ~far)
        assert np.array_equal(kidney, overlap) and np.array_equal(spleen, hidden)
    else:
        assert np.array_equal(target, prediction)
        expected_kidney = overlap & ~prediction if mode in ("visible", "all") else overlap
        expected_spleen = hidden & ~prediction if mode == "all" else hidden
        assert np.array_equal(kidney, expected_kidney)
        assert np.array_equal(spleen, expected_spleen)
    world.logic.undo()  # everything the click changed comes back, other segments included
    assert not world.segment().any()
    for name, mask in zip(ids, (overlap, far, hidden)):
        assert np.array_equal(world.segment(ids[name]).astype(bool), mask), name


def test_segment_editor_intensity_range_limits_the_segment(world, case, reference):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    prediction = expected_after(reference, world, [(liver, True)]).astype(bool)
    suv = sitk.GetArrayFromImage(case.image)
    editor = world.scene.AddNode(slicer.vtkMRMLSegmentEditorNode())
    threshold = float(np.median(suv[prediction]))
    editor.SetSourceVolumeIntensityMask(True)
    editor.SetSourceVolumeIntensityMaskRange(threshold, 1e6)
    world.logic.setSegmentEditorNode(editor)  # given explicitly instead of the Segment Editor's
    world.click(liver)
    target = world.segment().astype(bool)
    assert np.array_equal(target, prediction & (suv >= threshold))


def test_a_segmentation_on_another_grid_receives_the_segment(world, case, reference):
    """A segmentation made on another volume (here a larger field of view) keeps its own grid."""
    image = case.image
    larger = sitk.ConstantPad(image, (2, 2, 2), (2, 2, 2), 0.0)  # same spacing, origin 2 voxels earlier
    other = addVolumeFromImage(larger, "larger field of view")
    segmentation = world.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(other)
    segmentId = addSegment(segmentation, "liver")
    world.logic.setTargetSegment(segmentation, segmentId)
    liver = organ_center_zyx(case.label, LABELS["liver"])
    world.click(liver)
    stored = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, other)
    assert stored.shape == sitk.GetArrayViewFromImage(larger).shape
    expected = expected_after(reference, world, [(liver, True)])
    assert np.array_equal(stored[2:-2, 2:-2, 2:-2], expected) and not stored[:2].any()


# ----------------------------------------------------------------------------------------- resume
def test_prompts_survive_saving_and_reloading_the_segmentation(world, network, case, reference, tmp_path):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    extra = (liver[0] + 2, liver[1] - 1, liver[2])
    world.click(liver)
    world.click(extra, positive=False)
    path = tmp_path / "segmentation.seg.nrrd"
    storage = world.segmentation.CreateDefaultStorageNode()
    storage.SetFileName(str(path))
    assert storage.WriteData(world.segmentation)
    saved = world.segment()
    world.logic.cleanup()

    again = Scene(network, case, segmentationFile=path)  # a new scene (Slicer restarted), a new logic

    assert again.positive.GetNumberOfControlPoints() == 1 and again.negative.GetNumberOfControlPoints() == 1
    assert np.allclose(again.negative.GetNthControlPointPositionWorld(0), world.ras(extra), atol=1e-3)
    assert np.array_equal(again.segment(), saved)  # shown again, not recomputed
    third = (liver[0] - 2, liver[1], liver[2] + 1)
    again.click(third)
    expected = expected_after(reference, world, [(liver, True), (extra, False), (third, True)])
    assert np.array_equal(again.segment(), expected)
    again.logic.cleanup()


def test_finish_releases_the_segment_and_a_new_target_starts_empty(world, case):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    world.click(liver)
    first = world.segment()
    world.logic.finish()
    assert world.positive.GetNumberOfControlPoints() == 0 and world.logic.targetSegmentId is None
    kidney = addSegment(world.segmentation, "kidney_left")
    world.logic.setTargetSegment(world.segmentation, kidney)
    world.logic.setOptions(lesion_refiners=("clicked_islands", "focal_uptake"))
    world.logic.setLesion(True)  # a new segment keeps the current mode; this one is made in lesion mode
    world.click(organ_center_zyx(case.label, LABELS["kidney_left"]))
    assert world.segment(kidney).any() and json.loads(_tag(world, kidney))["lesion"] is True
    world.logic.setTargetSegment(world.segmentation, world.target)  # back: its points come back
    assert world.positive.GetNumberOfControlPoints() == 1
    assert np.array_equal(world.segment(), first)  # the kidney's clicks did not modify it (the default)
    assert not world.logic.lesion  # as the liver was made; the session follows from the next click
    world.click((liver[0] + 1, liver[1], liver[2]))
    assert not world.logic._session.lesion
    world.logic.setTargetSegment(world.segmentation, kidney)
    assert world.logic.lesion


# ----------------------------------------------------------------------------------------- statistics
def test_statistics_table_and_csv(world, case, tmp_path):
    liver = organ_center_zyx(case.label, LABELS["liver"])
    world.click(liver)
    kidney = addSegment(world.segmentation, "kidney_left")
    _fill(world, kidney, sitk.GetArrayFromImage(case.label) == LABELS["kidney_left"])
    addSegment(world.segmentation, "my lesion")  # an empty, free-text segment
    csv_path = tmp_path / "stats.csv"

    table = world.logic.exportStatistics(world.segmentation, world.volume, str(csv_path))

    assert table.IsA("vtkMRMLTableNode")
    assert [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())] == list(COLUMNS)
    assert table.GetNumberOfRows() == 3
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["segment"] for r in rows] == ["liver", "kidney left", "my lesion"]
    assert [r["label"] for r in rows] == ["1", "2", ""]
    suv = sitk.GetArrayFromImage(case.image)
    for index, segmentId in enumerate((world.target, kidney)):
        mask = world.segment(segmentId).astype(bool)
        assert float(rows[index]["SUVmax [g/mL]"]) == pytest.approx(suv[mask].max(), rel=1e-6)
        assert float(rows[index]["SUVmean [g/mL]"]) == pytest.approx(suv[mask].mean(), rel=1e-5)
        assert float(rows[index]["volume [mL]"]) == pytest.approx(mask.sum() * np.prod(case.image.GetSpacing()) / 1000)
        assert 0 < float(rows[index]["SUVpeak [g/mL]"]) <= suv[mask].max() + 1e-6
        assert table.GetCellText(index, COLUMNS.index("SUVmax [g/mL]")) != ""
    assert rows[2]["SUVmax [g/mL]"] == ""  # empty segment
    assert table.GetAttribute("SegAnyPET.suvFactorSource").startswith("assumed")

    with pytest.raises(SegAnyPETError, match="exists"):
        world.logic.exportStatistics(world.segmentation, world.volume, str(csv_path))
    scaled = world.logic.exportStatistics(world.segmentation, world.volume, str(csv_path), suvFactor=2.0, overwrite=True)
    assert scaled.GetAttribute("SegAnyPET.suvFactorSource") == "user"
    with open(csv_path, newline="") as handle:
        doubled = list(csv.DictReader(handle))
    assert float(doubled[1]["SUVmax [g/mL]"]) == pytest.approx(2 * float(rows[1]["SUVmax [g/mL]"]))
    with pytest.raises(SegAnyPETError, match="positive"):
        world.logic.exportStatistics(world.segmentation, world.volume, suvFactor=0.0)


def test_suv_units_from_the_pet_dicom_import():
    headless_slicer()
    volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    assert volumeSuvFactor(volume) is None
    units = slicer.vtkCodedEntry()
    units.SetValueSchemeMeaning("{SUVbw}g/ml", "UCUM", "Standardized Uptake Value body weight")
    volume.SetVoxelValueUnits(units)
    assert volumeSuvFactor(volume) == 1.0
    assert SegAnyPETLogic.suvFactorFor(volume) == (1.0, "DICOM real-world value mapping")


# ----------------------------------------------------------------------------------------- batch segmenter
def test_mrml_segmenter_gives_the_same_masks_as_the_library(network, case):
    from SegAnyPETLib.evaluate import ModelSegmenter, run_protocol
    from SegAnyPETLib.slicer_logic import MRMLSegmenter

    headless_slicer()
    truth = sitk.GetArrayFromImage(case.label) == LABELS["kidney_left"]
    # The defaults, then a preset with options and lesion mode for the target (passed on by name).
    for lesions, preset, options in (((), None, {}), (("kidney_left",), "bundled", {"part_check": False, "max_crops": 2})):
        results = []
        library = ModelSegmenter(network, device="cpu", preset=preset, lesion_targets=lesions, **options)
        slicer_side = MRMLSegmenter(network, "cpu", preset=preset, lesionTargets=lesions, **options)
        for segmenter in (slicer_side, library):
            segmenter.set_image(case.image)
            results.append(run_protocol(segmenter, truth, [1, 2], np.random.default_rng(5), "kidney_left"))
        assert slicer_side.logic.lesion == bool(lesions) and slicer_side.logic._session.config == library.session.config
        for count in (1, 2):
            assert np.array_equal(results[0][count], results[1][count])


# ----------------------------------------------------------------------------------------- no GUI
SLICER_LIBRARY = ("slicer_logic", "slicer_steps", "slicer_prompts", "slicer_nodes", "slicer_segment_writer",
                  "slicer_statistics", "slicer_batch", "slicer_runner", "slicer_checks", "slicer_headless", "slice_view",
                  "slicer_bench", "slicer_options", "requirements")


@pytest.mark.parametrize("name", SLICER_LIBRARY)
def test_the_slicer_library_imports_no_qt_or_ctk_and_stays_small(name):
    path = REPO / "SegAnyPETLib" / f"{name}.py"
    source = path.read_text()
    tree = ast.parse(source)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"qt", "ctk", "PythonQt"}
    assert "slicer.ScriptedLoadableModule" not in source
    assert len(source.splitlines()) <= 500, f"{path.name}: split it by job"
    assert "qt" not in sys.modules
