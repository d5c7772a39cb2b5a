"""The module's inference options without Qt (SegAnyPETLib.slicer_options and the logic's setOptions):
one control per option of SessionConfig, control values to overrides (the differences from the
preset) and back through the parameter node's JSON, one clear error for a refused option, a preset
change that resets the options, and lesion mode refused where the options have no lesion refiners."""
from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from conftest import random_model
from SegAnyPETLib.errors import SegAnyPETError
from SegAnyPETLib.inference.config import PRESETS, SessionConfig, option_specs
from SegAnyPETLib.slicer_logic import SegAnyPETLogic
from SegAnyPETLib.slicer_options import (
    CONTROL_KINDS,
    DECIMALS,
    MODEL_DEFAULT,
    OptionsForm,
    optionControls,
    presetItems,
)


@pytest.fixture
def bundledModel():
    """A real (untrained) network whose own options are the bundled preset's."""
    model = random_model()
    model.inference = PRESETS["bundled"]
    return model


def test_one_control_per_option_of_the_config_with_its_kind_and_range():
    controls = {control.name: control for control in optionControls()}
    assert list(controls) == [spec.name for spec in option_specs()]  # a new option gets a control by itself
    assert {control.kind for control in controls.values()} == set(CONTROL_KINDS)
    assert controls["mirror"].kind == "checkbox" and controls["extend"].kind == "checkbox"
    assert controls["crop"].kind == "combobox" and controls["crop"].choices == ("at_click", "inside_image")
    assert controls["max_crops"].kind == "spinbox" and controls["max_crops"].minimum == 1  # the config refuses 0
    assert controls["edge_fraction"].kind == "doublespinbox" and controls["edge_fraction"].maximum == 1
    threshold = controls["mask_threshold"]
    assert threshold.kind == "doublespinbox" and threshold.optional and (threshold.minimum, threshold.maximum) == (0, 1)
    assert controls["refiners"].kind == controls["lesion_refiners"].kind == "lineedit"
    assert "contrast_edge" in controls["refiners"].choices
    assert controls["max_crops"].label == "Max crops" and "crop" in controls["max_crops"].toolTip
    assert presetItems() == [(MODEL_DEFAULT, "Model default")] + [(name, name) for name in PRESETS]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_control_values_and_overrides_round_trip_through_the_parameter_node(preset):
    base = PRESETS[preset]
    form = OptionsForm(preset)
    shown = form.controlValues(base)
    assert shown["refiners"] == ", ".join(base.refiners) and shown["mirror"] is base.mirror
    assert shown["mask_threshold"] == 0.0  # not set: the spin box's minimum ("default")
    form.setControlValues(base, shown)
    assert form.overrides == {}  # the controls as shown: nothing differs from the preset

    changed = dict(shown, mirror=not base.mirror, max_crops=base.max_crops + 2, mask_threshold=0.35,
                   refiners="contrast_edge, clicked_islands", crop="inside_image")
    form.setControlValues(base, changed)
    expected = {"mirror": not base.mirror, "max_crops": base.max_crops + 2, "mask_threshold": 0.35,
                "refiners": ("contrast_edge", "clicked_islands")}
    if base.crop != "inside_image":
        expected["crop"] = "inside_image"
    assert form.overrides == expected
    node = form.toNode()
    assert node[0] == preset and json.loads(node[1])["refiners"] == ["contrast_edge", "clicked_islands"]
    again = OptionsForm.fromNode(*node)
    assert again.overrides == expected and again.controlValues(base) == changed
    assert again.config(base) == base.replace(**expected)
    assert "changed: crop" in again.summary() or "changed: mask_threshold" in again.summary()

    # a control put back to the preset's value is no longer an override
    again.setControlValues(base, dict(changed, mirror=base.mirror))
    assert "mirror" not in again.overrides and again.overrides["max_crops"] == base.max_crops + 2


def test_a_value_the_spin_box_rounds_is_not_an_override():
    base = SessionConfig(edge_fraction=0.41234)
    form = OptionsForm()
    shown = form.controlValues(base)
    shown["edge_fraction"] = round(shown["edge_fraction"], DECIMALS)  # what the spin box holds: 0.412
    assert shown["edge_fraction"] != base.edge_fraction
    form.setControlValues(base, shown)
    assert form.overrides == {}
    form.setControlValues(base, dict(shown, edge_fraction=0.5))
    assert form.overrides == {"edge_fraction": 0.5}


def test_refused_options_are_one_clear_error_and_change_nothing():
    with pytest.raises(SegAnyPETError, match="unknown inference option.*no_such_option"):
        OptionsForm.fromNode("bundled", '{"no_such_option": 1}')
    with pytest.raises(SegAnyPETError, match="not JSON"):
        OptionsForm.fromNode("bundled", "{mirror: true")
    with pytest.raises(SegAnyPETError, match="JSON object"):
        OptionsForm.fromNode("bundled", "[1, 2]")
    with pytest.raises(SegAnyPETError, match="unknown preset 'fast'"):
        OptionsForm.fromNode("fast", "{}")
    form = OptionsForm("bundled", {"mirror": True})
    base = PRESETS["bundled"]
    for name, value, message in (("max_crops", 0, "max_crops must be at least 1"),
                                 ("refiners", "clicked_islands, no_refiner", "refiners must be one of"),
                                 ("mask_threshold", 1.0, "mask_threshold must lie between 0 and 1")):
        with pytest.raises(SegAnyPETError, match=message):
            form.setControlValues(base, dict(form.controlValues(base), **{name: value}))
        assert form.overrides == {"mirror": True}
    # the logic refuses the same with the same message (one check: the config's)
    logic = SegAnyPETLogic("demo", "cpu")
    with pytest.raises(SegAnyPETError, match="unknown inference option.*no_such_option"):
        logic.setOptions("bundled", no_such_option=1)
    with pytest.raises(SegAnyPETError, match="max_crops must be at least 1"):
        logic.setOptions(max_crops=0)
    assert logic.preset is None and logic.overrides == {} and not logic.modelLoaded
    with pytest.raises(SegAnyPETError, match="unknown inference option"):
        SegAnyPETLogic("demo", "cpu", mirrored=True)


def test_remembered_options_that_are_refused_now_fall_back_to_the_model_default(caplog):
    with caplog.at_level(logging.WARNING):
        form = OptionsForm.remembered("bundled", '{"contrast_edge": true}')  # an option of an older version
    assert form.toNode() == (MODEL_DEFAULT, "{}") and "contrast_edge" in caplog.text
    assert OptionsForm.remembered("official", '{"mirror": true}').toNode() == ("official", '{"mirror": true}')


def test_a_preset_change_resets_the_options_to_the_presets_or_the_models_own(bundledModel):
    logic = SegAnyPETLogic(bundledModel, "cpu")
    form = OptionsForm("official", {"mirror": True, "max_crops": 3})
    form.choosePreset("bundled")
    assert form.toNode() == ("bundled", "{}")
    assert form.controlValues(logic.baseConfig(form.preset)) == OptionsForm().controlValues(PRESETS["bundled"])
    form.setControlValues(PRESETS["bundled"], {"extend": True})
    assert form.overrides == {"extend": True}

    form.choosePreset(MODEL_DEFAULT)  # the model's own options, through resolve_config
    assert form.overrides == {} and form.summary() == "Options of the model's own options."
    assert logic.baseConfig(form.preset) == bundledModel.inference
    assert OptionsForm().controlValues(logic.baseConfig("official"))["crop"] == "at_click"
    with pytest.raises(SegAnyPETError, match="unknown preset"):
        form.choosePreset("fastest")
    assert form.preset == MODEL_DEFAULT

    # what the logic runs with follows the form
    form.choosePreset("official")
    form.setControlValues(logic.baseConfig("official"), {"max_crops": 2})
    logic.setOptions(form.preset or None, **form.overrides)
    assert logic.config == PRESETS["official"].replace(max_crops=2)
    logic.setOptions(None)
    assert logic.config == PRESETS["bundled"]


def test_lesion_mode_is_refused_for_the_official_preset_with_a_clear_message(bundledModel):
    logic = SegAnyPETLogic("demo", "cpu", preset="official")  # the preset alone decides: no model loaded
    with pytest.raises(SegAnyPETError, match=r"the inference options \(the official preset\) have no lesion "
                                             r"refiners.*choose a preset with them \(bundled\)"):
        logic.setLesion(True)
    assert not logic.lesion and not logic.modelLoaded
    with pytest.raises(SegAnyPETError, match="no lesion refiners"):
        SegAnyPETLogic("demo", "cpu", preset="official", lesion=True)
    logic.setOptions("official", lesion_refiners="clicked_islands,focal_uptake")
    logic.setLesion(True)
    assert logic.lesion
    logic.setOptions("official", mirror=True)  # no lesion refiners any more: lesion mode goes off
    assert not logic.lesion
    with pytest.raises(SegAnyPETError, match=r"\(the official preset, changed: mirror\) have no lesion refiners"):
        logic.setLesion(True)

    own = SegAnyPETLogic(bundledModel, "cpu", lesion=True)  # the model's own options have them
    assert own.lesion and own.config.lesion_refiners == ("clicked_islands", "focal_uptake")
    own.setOptions(None, lesion_refiners=())
    assert not own.lesion
    with pytest.raises(SegAnyPETError, match=r"\(the model's own, changed: lesion_refiners\)"):
        own.setLesion(True)


def test_every_option_round_trips_on_its_own():
    """Each option alone, set to a value other than the default, survives controls -> node -> controls."""
    base = SessionConfig()
    for control in optionControls():
        spec = next(s for s in option_specs() if s.name == control.name)
        other = {"checkbox": not spec.default, "spinbox": 3, "doublespinbox": 0.25,
                 "combobox": spec.choices[-1] if spec.choices else None,
                 "lineedit": ", ".join(spec.choices[:2]) if spec.choices else ""}[control.kind]
        form = OptionsForm()
        form.setControlValues(base, dict(form.controlValues(base), **{control.name: other}))
        assert list(form.overrides) == [control.name], control.name
        back = OptionsForm.fromNode(*form.toNode())
        assert back.controlValues(base)[control.name] == other
        assert dataclasses.replace(base, **back.overrides) == form.config(base)
