"""The interactive session: cached embeddings, coordinates, undo, paste-back, large organs, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from conftest import constant_model, random_model
from SegAnyPETLib.errors import Cancelled, SegAnyPETError
from SegAnyPETLib.inference.config import PRESETS
from SegAnyPETLib.metrics import dice
from SegAnyPETLib.preprocessing import PreprocessConfig
from SegAnyPETLib.session import InteractiveSession

BUNDLED_REFINERS = PRESETS["bundled"].refiners


def full_volume(session, box, array) -> np.ndarray:
    out = np.zeros(session.mask.shape, dtype=bool)
    out[box] = array
    return out


def network_mask(session) -> np.ndarray:
    """The blended crops' mask, before any refiner (whole volume)."""
    box = session._crops.box()
    return full_volume(session, box, session._crops.network_mask(box))


def excluded(session) -> np.ndarray:
    """The parts the part check left out (whole volume)."""
    return full_volume(session, session._excluded.box, session._excluded.array)


def count_encoder_runs(model) -> list:
    calls = []
    model.image_encoder.register_forward_hook(lambda *args: calls.append(1))
    return calls


def cut_model(spacing: float, start: float, stop: float):
    """The all-foreground network on crops of ``spacing`` mm, its logits negated from ``start`` to
    ``stop`` (fractions of the crop) along the first crop axis."""
    model = constant_model("tiny", sign=1.0)
    model.preprocessing = PreprocessConfig(spacing=(spacing,) * 3, crop_size=model.config.img_size)
    decode = model.decode

    def cut(*args, **kwargs):
        logits, iou = decode(*args, **kwargs)
        low = logits.shape[2]
        sign = torch.ones_like(logits)
        sign[:, :, int(start * low) : int(stop * low)] = -1
        return logits * sign, iou

    model.decode = cut
    return model


def test_clicks_inside_the_crop_reuse_the_embedding(tiny_model, blob_image):
    calls = count_encoder_runs(tiny_model)
    session = InteractiveSession(tiny_model, "bundled", device="cpu")
    session.set_image(blob_image)
    first = session.add_click((24, 20, 18))
    assert first.shape == (36, 40, 48) and first.dtype == np.uint8
    session.add_click((20, 22, 16), positive=False)
    session.add_click((26, 19, 20))
    assert len(calls) == 1 and session.num_crops == 1
    assert session.timing["encoder_ms"] == 0.0 and session.timing["click_ms"] > 0
    session.new_object()
    session.add_click((24, 20, 18))  # a new object clicked at the same spot: the same crop, cached
    assert len(calls) == 1 and session.timing["encoder_ms"] == 0.0


def test_the_embedding_cache_is_bounded(tiny_model):
    image = sitk.GetImageFromArray(np.random.default_rng(2).gamma(2.0, 1.0, (72, 72, 120)).astype(np.float32))
    image.SetSpacing((4.0, 4.0, 4.0))
    session = InteractiveSession(tiny_model, "bundled", device="cpu", interior_crop=False, part_check=False)
    session.embeddings.max_cached = 2
    session.set_image(image)
    calls = count_encoder_runs(tiny_model)
    for x in (40, 50, 60, 70, 40):  # five objects, each in its own crop
        session.new_object()
        session.add_click((x, 36, 36))
        assert len(session.embeddings._cache) <= 2
    assert len(calls) == 5  # the first crop was dropped before it came back
    session.add_click((41, 36, 36))  # a later click of the current object keeps its crop
    session.new_object()
    session.add_click((70, 36, 36))  # still cached
    assert len(calls) == 5


def test_the_mask_threshold_is_the_operating_point(tiny_model, blob_image):
    masks = {}
    for threshold in (0.3, 0.5, 0.7):
        session = InteractiveSession(tiny_model, "bundled", device="cpu", mask_threshold=threshold)
        session.set_image(blob_image)
        masks[threshold] = session.add_click((24, 20, 18)).astype(bool)
    assert not np.any(masks[0.7] & ~masks[0.5]) and not np.any(masks[0.5] & ~masks[0.3])
    assert masks[0.3].sum() > masks[0.7].sum()
    tiny_model.mask_threshold = 0.7  # a calibrated checkpoint's threshold is the default
    default = InteractiveSession(tiny_model, "bundled", device="cpu")
    default.set_image(blob_image)
    assert np.array_equal(default.add_click((24, 20, 18)).astype(bool), masks[0.7])
    with pytest.raises(SegAnyPETError, match="mask_threshold must lie between 0 and 1"):
        InteractiveSession(tiny_model, device="cpu", mask_threshold=1.0)


def test_every_object_is_centred_on_its_first_click(tiny_model):
    """A crop that already holds a new object's first click is not reused (the networks segment
    what lies at a crop's centre), so an object's result never depends on the objects before it."""
    image = sitk.GetImageFromArray(np.random.default_rng(1).gamma(2.0, 1.0, (72, 72, 120)).astype(np.float32))
    image.SetSpacing((4.0, 4.0, 4.0))  # 480 x 288 x 288 mm: larger than the 256 mm crop on every axis
    calls = count_encoder_runs(tiny_model)
    alone = InteractiveSession(tiny_model, "bundled", device="cpu")
    alone.set_image(image)
    expected = alone.add_click((60, 36, 36))
    session = InteractiveSession(tiny_model, "bundled", device="cpu")
    session.set_image(image)
    session.add_click((40, 36, 36))
    earlier = session.crops[0]
    assert earlier.contains(session.to_lps((60, 36, 36)), margin=8)  # well inside the earlier crop
    session.new_object()
    assert np.array_equal(session.add_click((60, 36, 36)), expected)
    assert session.crops == alone.crops and session.crops[0] != earlier
    assert np.allclose(session.crops[0].center, session.to_lps((60, 36, 36)))
    assert len(calls) == 3


def test_a_first_click_at_the_masks_edge_adds_a_crop_centred_inside_it():
    """The network here segments the second half of its crop along the first axis, so the first
    click (the crop's centre) lies on the mask's edge: a second crop is centred on the deepest
    point of that half, costs one encoder run and is blended in; later clicks add none. A click
    at the centre of its mask adds no crop."""
    image = sitk.GetImageFromArray(np.random.default_rng(1).gamma(2.0, 1.0, (72, 72, 120)).astype(np.float32))
    image.SetSpacing((4.0, 4.0, 4.0))
    model = cut_model(spacing=1.5, start=0.0, stop=0.5)
    calls = count_encoder_runs(model)
    masks = {}
    for interior_crop in (True, False):
        session = InteractiveSession(model, "bundled", device="cpu", interior_crop=interior_crop)
        session.set_image(image)
        masks[interior_crop] = session.add_click((60, 36, 36))
    assert len(calls) == 3 and session.num_crops == 1
    session = InteractiveSession(model, "bundled", device="cpu")
    session.set_image(image)
    session.add_click((60, 36, 36))
    assert len(calls) == 5
    first, interior = session.crops
    index = first.to_index(interior.center)[0]
    half = first.size // 2  # the mask: crop indices half..size-1 on the first axis
    assert abs(index[0] - (half + (half - 1) / 2)) <= 0.5  # midway between the cut and the crop face
    assert np.all((index[1:] >= half / 2 - 1) & (index[1:] <= first.size - half / 2))  # at least as deep
    assert not np.array_equal(masks[True], masks[False])
    session.add_click((58, 36, 36))
    assert session.num_crops == 2 and len(calls) == 5

    everything = InteractiveSession(constant_model("tiny", sign=1.0), "bundled", device="cpu")
    everything.set_image(image)
    everything.add_click((60, 36, 36))
    assert everything.num_crops == 1


def test_no_interior_crop_that_would_not_hold_the_click():
    """A first click near the image's edge, in a thin arm of a mask whose bulk lies across the
    crop: a crop centred on the bulk would not hold the click, so none is added."""
    image = sitk.GetImageFromArray(np.random.default_rng(1).gamma(2.0, 1.0, (72, 72, 120)).astype(np.float32))
    image.SetSpacing((4.0, 4.0, 4.0))
    model = constant_model("tiny", sign=1.0)
    model.preprocessing = PreprocessConfig(spacing=(1.5, 1.5, 1.5), crop_size=model.config.img_size)
    probe = InteractiveSession(model, "bundled", device="cpu", interior_crop=False)
    probe.set_image(image)
    click = (1, 36, 60)  # 4 mm from the image's face: the crop is moved off the click to fit
    probe.add_click(click)
    n = model.config.low_res_size  # the logits' grid, (i, j, k) as the crop
    cell = (probe.crops[0].to_index(probe.to_lps(click))[0] * n / model.config.img_size).astype(int)
    low = np.zeros((n, n, n), bool)
    bulk = slice(n * 5 // 8, n) if cell[0] < n // 2 else slice(0, n * 3 // 8)
    low[bulk] = True
    arm = (slice(min(cell[0], bulk.start), max(cell[0] + 2, bulk.stop)),) + tuple(slice(c - 1, c + 2) for c in cell[1:])
    low[arm] = True
    sign = torch.from_numpy(np.where(low, 1.0, -1.0).astype(np.float32))
    decode = model.decode

    def shaped(*args, **kwargs):
        logits, iou = decode(*args, **kwargs)
        return logits.abs() * sign, iou

    model.decode = shaped
    session = InteractiveSession(model, "bundled", device="cpu")
    session.set_image(image)
    mask = session.add_click(click)
    assert session.num_crops == 1 and mask[click[::-1]] == 1


def crop_reading_model(spacing: float, rule, arch: str = "tiny"):
    """A network (``arch``) on crops of ``spacing`` mm whose mask is ``rule(crops, coords, step)``: a
    (B, 1, ...) bool tensor on the logits' grid, from the crops it encoded (B, 1, ...), the points
    and the crop voxels per logits voxel."""
    model = constant_model(arch, sign=1.0)
    model.preprocessing = PreprocessConfig(spacing=(spacing,) * 3, crop_size=model.config.img_size)
    encoded = {}
    model.image_encoder.register_forward_hook(lambda module, args, output: encoded.update({output.data_ptr(): args[0]}))
    decode = model.decode

    def segment(embeddings, coords, labels, mask_prompt):
        logits, iou = decode(embeddings, coords, labels, mask_prompt)
        crops = encoded[embeddings.data_ptr()]
        return torch.where(rule(crops, coords, crops.shape[-1] // logits.shape[-1]), 10.0, -10.0), iou

    model.decode = segment
    return model


def brighter_than_click_model():
    """A network on 4 mm crops that segments the voxels at least as bright as its first point."""
    def brighter(crops, coords, step):
        return torch.stack([crop[0, ::step, ::step, ::step] >= crop[0][tuple(point.round().long().tolist())] - 1e-4
                            for crop, point in zip(crops, coords[:, 0])])[:, None]

    return crop_reading_model(4.0, brighter)


def low_threshold_model(fraction: float):
    """A network on 2 mm crops (logits every 4 mm) that segments the voxels ``fraction`` of the
    way from the crop's lowest value to its highest (a blurred organ too large for a low fraction)."""
    def low_threshold(crops, coords, step):
        coarse = crops[:, :, ::step, ::step, ::step]
        low, high = coarse.amin(), coarse.amax()
        return coarse > low + fraction * (high - low)

    return crop_reading_model(2.0, low_threshold)


def test_the_contrast_edge_moves_a_mask_a_voxel_too_large_to_the_organ():
    """A blurred hot ball and a network that segments it a voxel too large: the contrast edge
    brings the mask back to the ball, without another network run; the clicked voxel stays."""
    z, y, x = np.mgrid[:40, :40, :40]
    ball = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 8 ** 2
    array = ndimage.gaussian_filter(np.where(ball, 5.0, 1.0), 6.0 / 2.355 / 4.0).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((4.0, 4.0, 4.0))
    model = low_threshold_model(0.1)
    calls = count_encoder_runs(model)
    masks = {}
    for edge in (False, True):
        session = InteractiveSession(model, "bundled", device="cpu", interior_crop=False,
                                     refiners=BUNDLED_REFINERS if edge else ("clicked_islands",))
        session.set_image(image)
        masks[edge] = session.add_click((20, 20, 20)).astype(bool)
    assert len(calls) == 2
    assert masks[False].sum() > 1.3 * ball.sum() and dice(masks[False], ball) < 0.9
    assert dice(masks[True], ball) > 0.97
    moved = np.argwhere(masks[False] & ~masks[True])
    assert len(moved) and not ball[tuple(moved.T)].any()
    outer = tuple(int(i) for i in moved[0])  # (z, y, x): outside the ball, inside the network's mask
    assert session.add_click(outer[::-1], positive=False)[outer] == 0
    session.undo()
    assert session.add_click(outer[::-1])[outer] == 1  # a positive click keeps its voxel in


def test_a_click_the_contrast_edge_cuts_off_keeps_the_object_beside_it():
    """A network that segments a sharp ball and two warm voxels beside it: the edge takes them off
    but keeps the clicked one, which then touches the ball only at a corner; the ball stays."""
    z, y, x = np.mgrid[:40, :40, :40]
    ball = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 8 ** 2
    clicked, bridge = (21, 20, 29), (20, 20, 29)  # (z, y, x): diagonal to the ball, and joining it
    array = np.where(ball, 5.0, 1.0).astype(np.float32)
    array[clicked] = array[bridge] = 1.5
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((4.0, 4.0, 4.0))

    def warm(crops, coords, step):  # above the background (the median inside the image)
        background = crops[crops > crops.amin()].median()
        return crops > background + 0.06 * (crops.amax() - background)

    session = InteractiveSession(crop_reading_model(4.0, warm, arch="tiny_conv"), "bundled", device="cpu",
                                 interior_crop=False, part_check=False)
    session.set_image(image)
    mask = session.add_click(clicked[::-1]).astype(bool)
    assert network_mask(session)[bridge] and not mask[bridge]
    assert mask[ball].all() and np.argwhere(mask & ~ball).tolist() == [list(clicked)]


def test_lesion_mode_segments_the_focal_uptake_inside_the_networks_organ():
    """A network that returns the warm organ around a hot lesion: in lesion mode the mask is the
    lesion, without another network run; the mode can change between objects."""
    z, y, x = np.mgrid[:40, :40, :40]
    organ = (z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 12 ** 2
    lesion = (z - 20) ** 2 + (y - 20) ** 2 + (x - 26) ** 2 <= 2 ** 2
    array = ndimage.gaussian_filter(np.select([lesion, organ], [10.0, 2.0], 0.5), 6.0 / 2.355 / 4.0).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((4.0, 4.0, 4.0))
    model = low_threshold_model(0.1)
    calls = count_encoder_runs(model)
    session = InteractiveSession(model, "bundled", device="cpu", interior_crop=False)
    session.lesion = True
    session.set_image(image)
    found = session.add_click((26, 20, 20)).astype(bool)
    assert dice(found, lesion) > 0.8
    session.lesion = False
    session.new_object()
    whole = session.add_click((26, 20, 20)).astype(bool)
    assert dice(whole, organ) > 0.9 and dice(whole, lesion) < 0.2
    assert len(calls) == 1  # the second object reuses the crop's embedding


def test_a_part_that_clicked_alone_is_another_object_is_left_out():
    """Two balls joined by a neck: a click at the dim ball's edge segments both, the bright ball
    clicked alone segments only itself, so it is left out (one more encoder run); a positive click
    at its centre brings it back, one at its rim only the rim's voxel, and undo leaves it out again.
    The bright ball clicked first is one part: nothing to check."""
    z, y, x = np.mgrid[:40, :40, :100]
    array = np.full(z.shape, 0.5, np.float32)
    array[((z - 20) ** 2 + (y - 20) ** 2 <= 2.5 ** 2) & (x >= 35) & (x <= 60)] = 2.5  # the neck
    dim, bright = (20, 20, 35), (20, 20, 60)
    for centre, value in ((dim, 2.0), (bright, 3.0)):
        array[(z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= 7 ** 2] = value
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((4.0, 4.0, 4.0))
    model = brighter_than_click_model()
    calls = count_encoder_runs(model)
    edge = (29, 20, 20)  # (x, y, z): one voxel inside the dim ball, away from the neck
    masks = {}
    for part_check in (False, True):
        session = InteractiveSession(model, "bundled", device="cpu", interior_crop=False, part_check=part_check)
        session.set_image(image)
        masks[part_check] = session.add_click(edge)
    assert masks[False][bright] and masks[False][dim]
    assert len(calls) == 3  # one crop each, and the bright ball's check
    assert masks[True][dim] and masks[True][edge[::-1]] and not masks[True][bright]
    assert not (masks[True].astype(bool) & excluded(session)).any()  # the contrast edge does not cross the cut
    assert masks[True].sum() < masks[False].sum() * 0.7
    left_out = excluded(session)
    rim = tuple(int(i) for i in max(np.argwhere(left_out), key=lambda zyx: zyx[0]))  # the bright ball's top
    edged = session.add_click(rim[::-1]).astype(bool)  # corrects the edge: only its voxel comes back
    assert edged[rim] and not edged[bright] and np.argwhere(edged & left_out).tolist() == [list(rim)]
    assert np.array_equal(session.undo(), masks[True])
    assert np.array_equal(session.add_click(bright[::-1]), masks[False])  # its centre: the part comes back
    assert np.array_equal(session.undo(), masks[True])
    session.new_object()
    alone = session.add_click(bright[::-1])
    assert alone[bright] and not alone[dim] and len(calls) == 4  # its own crop, no check


def test_point_spaces_agree(tiny_model, blob_image):
    session = InteractiveSession(tiny_model, "bundled", device="cpu")
    session.set_image(blob_image)
    ijk = (30, 12, 20)
    lps = np.array(blob_image.TransformIndexToPhysicalPoint(ijk))
    by_index = session.add_click(ijk)
    session.new_object()
    by_lps = session.add_click(lps, space="lps")
    session.new_object()
    by_ras = session.add_click(lps * [-1, -1, 1], space="ras")
    assert np.array_equal(by_index, by_lps) and np.array_equal(by_index, by_ras)


def test_orientation_and_input_form_do_not_change_the_result(tiny_model, blob_image):
    session = InteractiveSession(tiny_model, "bundled", device="cpu")
    session.set_image(blob_image)
    reference = session.add_click((24, 20, 18))
    # The same voxels stored right-to-left along x (direction -1, origin at the other end).
    array = sitk.GetArrayFromImage(blob_image)[:, :, ::-1].copy()
    flipped = sitk.GetImageFromArray(array)
    flipped.SetSpacing(blob_image.GetSpacing())
    flipped.SetOrigin(blob_image.TransformIndexToPhysicalPoint((47, 0, 0)))
    flipped.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    session.set_image(flipped)
    mask = session.add_click((47 - 24, 20, 18))
    assert np.array_equal(mask[:, :, ::-1], reference)
    # numpy (z, y, x) plus geometry is the same as the SimpleITK image.
    session.set_image(sitk.GetArrayFromImage(blob_image), spacing=blob_image.GetSpacing(),
                      origin=blob_image.GetOrigin(), direction=blob_image.GetDirection())
    assert np.array_equal(session.add_click((24, 20, 18)), reference)


def test_undo_reset_and_replaying_points(tiny_model, blob_image):
    session = InteractiveSession(tiny_model, "bundled", device="cpu")
    session.set_image(blob_image)
    one = session.add_click((24, 20, 18))
    two = session.add_click((30, 20, 18), positive=False)
    three = session.add_click((20, 18, 14))
    assert np.array_equal(session.undo(), two) and len(session.points) == 2
    assert np.array_equal(session.undo(), one)
    assert np.array_equal(session.add_click((30, 20, 18), positive=False), two)
    replayed = session.set_points([(24, 20, 18), (30, 20, 18), (20, 18, 14)], [1, 0, 1])
    assert np.array_equal(replayed, three)
    assert not session.reset().any() and session.points == []
    assert np.array_equal(session.undo(), three)


def test_paste_back_matches_the_crop_geometry(blob_image):
    """A network that segments everything returns exactly the input voxels inside its crop (the
    network's own edge: no contrast edge)."""
    model = constant_model("tiny", sign=1.0)
    model.preprocessing = PreprocessConfig(spacing=(2.0, 2.0, 2.0), crop_size=model.config.img_size)
    session = InteractiveSession(model, "bundled", device="cpu", interior_crop=False, refiners=("clicked_islands",))
    session.set_image(blob_image)
    mask = session.add_click((24, 20, 18))
    grid = session.crops[0]
    z, y, x = np.nonzero(np.ones(mask.shape))
    physical = np.array([blob_image.TransformIndexToPhysicalPoint((int(a), int(b), int(c))) for a, b, c in zip(x, y, z)])
    inside = np.all(np.abs(np.rint(grid.to_index(physical)) - (grid.size - 1) / 2) <= (grid.size - 1) / 2, axis=1)
    assert mask.sum() == inside.sum()
    assert np.array_equal(mask[z, y, x].astype(bool), inside)


def test_masks_that_reach_the_crop_border_add_crops(blob_image):
    """Large organs: the session extends past crop faces that lie inside the image."""
    model = constant_model("tiny", sign=1.0)
    model.preprocessing = PreprocessConfig(spacing=(1.5, 1.5, 1.5), crop_size=model.config.img_size)  # 96 mm crop
    single = InteractiveSession(model, "bundled", device="cpu", interior_crop=False)
    single.set_image(blob_image)
    cut = single.add_click((24, 20, 18))
    session = InteractiveSession(model, "bundled", device="cpu", extend=True, max_crops=4, interior_crop=False)
    session.set_image(blob_image)
    mask = session.add_click((24, 20, 18))
    assert session.num_crops > 1
    assert mask.sum() > cut.sum() and np.all(mask >= cut)
    session.undo()
    assert session.num_crops == 0 and not session.mask.any()


def test_added_crops_that_disagree_with_their_source_are_dropped(blob_image):
    """A network that segments the first half of every crop along its first axis: each crop added
    beyond a face of the first one puts that half elsewhere, so it disagrees with the first crop
    where they overlap and is dropped (with the gate off, it adds voxels beyond the first crop).
    The all-foreground network of the test above shows that agreeing crops are kept."""
    model = cut_model(spacing=1.5, start=0.5, stop=1.0)
    first_half = model.decode
    masks, crops = {}, {}
    for name, options in (("single", {}), ("gated", {"extend": True}), ("ungated", {"extend": True, "extension_agreement": 0.0})):
        # Every island kept: the halves the ungated crops add lie apart from the first crop's.
        session = InteractiveSession(model, "bundled", device="cpu", max_crops=6, refiners=("contrast_edge",), **options)
        session.set_image(blob_image)
        masks[name] = session.add_click((24, 20, 18))
        crops[name] = session.num_crops
        if name == "gated":  # a dropped crop is not decoded again on the next click
            decoded = []
            model.decode = lambda *args, **kwargs: decoded.append(1) or first_half(*args, **kwargs)
            session.add_click((22, 20, 18))
            model.decode = first_half
    assert crops == {"single": 1, "gated": 1, "ungated": 6}
    assert len(decoded) == 1
    assert np.array_equal(masks["gated"], masks["single"])
    assert masks["ungated"].sum() > masks["single"].sum()


def test_negative_click_far_from_the_object_changes_nothing(tiny_model, blob_image):
    session = InteractiveSession(tiny_model, "bundled", device="cpu")
    session.set_image(blob_image)
    assert not session.add_click((2, 2, 2), positive=False).any()
    assert session.num_crops == 0


def test_bad_clicks_and_images_are_refused(tiny_model, blob_image):
    session = InteractiveSession(tiny_model, "bundled", device="cpu")
    with pytest.raises(SegAnyPETError, match="no image"):
        session.add_click((1, 1, 1))
    session.set_image(blob_image)
    with pytest.raises(SegAnyPETError, match="outside the volume"):
        session.add_click((48, 0, 0))
    with pytest.raises(SegAnyPETError, match="outside the volume"):
        session.add_click((0.0, 0.0, 1000.0), space="lps")
    with pytest.raises(SegAnyPETError, match="unknown point space"):
        session.add_click((1, 1, 1), space="xyz")
    with pytest.raises(SegAnyPETError, match="three finite coordinates"):
        session.add_click((1, np.nan, 1))
    array = sitk.GetArrayFromImage(blob_image)
    cases = {
        "NaN": np.where(array > 5, np.nan, array),
        "constant": np.full_like(array, 2.0),
        "no positive": -np.abs(array),
        "looks like CT": array * 400 - 1000,
        "looks like a label map": (array > 3).astype(np.float32) * 3,
    }
    for message, values in cases.items():
        with pytest.raises(SegAnyPETError, match=message):
            session.set_image(values, spacing=(4, 4, 3))
    with pytest.raises(SegAnyPETError, match="4D"):
        session.set_image(sitk.JoinSeries([blob_image, blob_image]))
    with pytest.raises(SegAnyPETError, match="3D"):
        session.set_image(np.ones((4, 4)))
    assert session.image is not None  # the last good image is kept after a refused one


def test_paste_back_equals_itk_linear_resampling():
    """Crop values on the image grid are ITK's linear resampling; the crop covers the image voxels
    whose nearest crop voxel exists (ITK's nearest resampling, up to exact ties)."""
    from SegAnyPETLib.preprocessing import CropGrid, CropToImage, crop_footprint

    rng = np.random.default_rng(0)
    for _ in range(8):
        image = sitk.Image([int(v) for v in rng.integers(30, 60, 3)], sitk.sitkFloat32)
        image.SetSpacing(tuple(rng.uniform(1, 5, 3)))
        image.SetDirection(tuple(np.diag(rng.choice([-1.0, 1.0], 3))[:, rng.permutation(3)].ravel()))
        image.SetOrigin(tuple(rng.uniform(-100, 100, 3)))
        point = np.array(image.TransformContinuousIndexToPhysicalPoint(rng.uniform(5, 25, 3).tolist()))
        grid = CropGrid.around(point, PreprocessConfig(spacing=(2.5, 2.5, 2.5), crop_size=32), image)
        region = crop_footprint(grid, image)
        values = rng.random((32, 32, 32)).astype(np.float32) + 1
        to_image = CropToImage(grid, image, region)
        ours = to_image(values)

        crop = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))
        crop.SetOrigin(grid.origin), crop.SetSpacing(grid.spacing), crop.SetDirection(grid.direction)
        start = [region[2].start, region[1].start, region[0].start]
        reference = sitk.Image([region[2].stop - start[0], region[1].stop - start[1], region[0].stop - start[2]], sitk.sitkUInt8)
        reference.SetSpacing(image.GetSpacing()), reference.SetDirection(image.GetDirection())
        reference.SetOrigin(image.TransformIndexToPhysicalPoint(start))
        linear, nearest = (sitk.GetArrayFromImage(sitk.Resample(crop, reference, sitk.Transform(), method, 0.0, sitk.sitkFloat32))
                           for method in (sitk.sitkLinear, sitk.sitkNearestNeighbor))

        physical = np.array([image.TransformIndexToPhysicalPoint((int(x + start[0]), int(y + start[1]), int(z + start[2])))
                             for z, y, x in np.ndindex(ours.shape)])
        index = grid.to_index(physical).reshape(ours.shape + (3,))
        between_centres = np.all((index >= 0) & (index <= 31), axis=-1)
        assert between_centres.sum() > 1000
        np.testing.assert_allclose(ours[between_centres], linear[between_centres], atol=1e-5)
        differ = (ours > 0) != (nearest > 0)
        distance_to_tie = np.abs(np.abs(index[differ] % 1.0) - 0.5)
        assert np.all(distance_to_tie.min(axis=1) < 1e-6)  # the crop's extent differs only at exact ties
        assert np.all(ours[~to_image.inside] == 0)


@pytest.mark.parametrize("arch", ["tiny", "tiny_conv"])
def test_encoder_reports_progress_and_can_be_cancelled(arch, blob_image):
    from SegAnyPETLib.model import build_model
    from SegAnyPETLib.preprocessing import PreprocessConfig

    model = build_model(arch)
    model.preprocessing = PreprocessConfig(spacing=(4.0, 4.0, 4.0), crop_size=model.config.img_size)
    reports = []
    session = InteractiveSession(model, "bundled", device="cpu", progress=lambda fraction, text: reports.append(fraction))
    session.set_image(blob_image)
    session.add_click((24, 20, 18))
    assert len(reports) >= 3 and reports == sorted(reports) and reports[-1] == 1.0

    def cancel_at_first_report(fraction, text):
        cancelled.cancel()

    cancelled = InteractiveSession(model, "bundled", device="cpu", progress=cancel_at_first_report)
    cancelled.set_image(blob_image)
    with pytest.raises(Cancelled):
        cancelled.add_click((24, 20, 18))
    assert cancelled.mask.sum() == 0  # the cancelled click left nothing behind


@pytest.mark.parametrize("arch", ["tiny", "tiny_conv_clicks"])
def test_mirroring_makes_the_prediction_flip_equivariant(arch):
    """With test-time mirroring, flipping the image and the click flips the mask exactly (the
    click maps of ``tiny_conv_clicks`` are mirrored with the points)."""
    model = random_model(arch)
    rng = np.random.default_rng(1)
    array = rng.gamma(2.0, 1.0, (64, 64, 64)).astype(np.float32)
    array[20:44, 24:40, 30:50] += 6.0
    click = (20, 30, 40)  # ijk; the 64^3 image at 4 mm is exactly one crop

    def masks(mirror: bool) -> list:
        session = InteractiveSession(model, "bundled", device="cpu", mirror=mirror)
        session.set_image(array, spacing=(4.0, 4.0, 4.0))
        results = [session.add_click(click)]
        for axis in range(3):  # ijk axis; numpy axis 2 - axis
            session.set_image(np.flip(array, 2 - axis).copy(), spacing=(4.0, 4.0, 4.0))
            flipped = list(click)
            flipped[axis] = 63 - flipped[axis]
            results.append(np.flip(session.add_click(flipped), 2 - axis))
        return results

    plain, mirrored = masks(False), masks(True)
    assert 0 < mirrored[0].sum() < mirrored[0].size
    assert all(np.array_equal(mirrored[0], other) for other in mirrored[1:])
    assert not all(np.array_equal(plain[0], other) for other in plain[1:])  # the network alone is not symmetric


def test_turning_mirroring_on_encodes_the_crop_again(tiny_model, blob_image):
    calls = count_encoder_runs(tiny_model)
    session = InteractiveSession(tiny_model, "bundled", device="cpu")
    session.set_image(blob_image)
    plain = session.add_click((24, 20, 18))
    session.configure(mirror=True)
    session.new_object()
    mirrored = session.add_click((24, 20, 18))
    assert len(calls) == 2 and not np.array_equal(plain, mirrored)
    session.new_object()
    assert np.array_equal(session.add_click((24, 20, 18)), mirrored)  # the mirrored embeddings are cached
    session.configure(mirror=False)  # switched in the middle of an object: its crop is encoded again
    session.add_click((26, 19, 20))
    assert len(calls) == 3 and session.num_crops == 1


def test_only_the_islands_a_positive_click_touches_are_kept(blob_image):
    """A network that segments two slabs of its crop, separated by a gap: the first click keeps
    the slab it lies in; a positive click on the other slab keeps both; a negative click adds no
    island; without the ``clicked_islands`` refiner both slabs are always there."""
    model = cut_model(spacing=2.0, start=0.25, stop=0.375)
    # One crop: an interior crop would put its own slabs elsewhere.
    everything = InteractiveSession(model, "bundled", device="cpu", interior_crop=False, refiners=())
    everything.set_image(blob_image)
    both = everything.add_click((24, 20, 18))
    islands, count = ndimage.label(both)
    assert count == 2

    session = InteractiveSession(model, "bundled", device="cpu", interior_crop=False, refiners=("clicked_islands",))
    session.set_image(blob_image)
    first = session.add_click((24, 20, 18))
    clicked = islands[18, 20, 24]
    assert first[18, 20, 24] == 1 and np.array_equal(first, (islands == clicked).astype(np.uint8))
    other = np.argwhere(islands == 3 - clicked)[0]
    assert np.array_equal(session.add_click(tuple(other[::-1]), positive=False), first)
    with pytest.raises(SegAnyPETError, match="a positive and a negative point on the same voxel"):
        session.add_click(tuple(other[::-1]))
    session.undo()
    assert np.array_equal(session.add_click(tuple(other[::-1])), both)
    session.configure(refiners=())
    session.undo()
    assert np.array_equal(session.mask, both)


def test_a_later_click_the_network_leaves_out_brings_in_no_neighbouring_island(blob_image):
    """The two slabs again: after a click inside one slab, a positive click in the gap next to the
    other slab (which the network leaves out) keeps only the first slab; counting every click's 26
    neighbours (as after the contrast edge) would keep both."""
    model = cut_model(spacing=2.0, start=0.25, stop=0.375)
    everything = InteractiveSession(model, "bundled", device="cpu", interior_crop=False, refiners=())
    everything.set_image(blob_image)
    slabs = everything.add_click((24, 20, 18)).astype(bool)
    session = InteractiveSession(model, "bundled", device="cpu", interior_crop=False, refiners=("clicked_islands",))
    session.set_image(blob_image)
    first = session.add_click((24, 20, 18)).astype(bool)
    other = slabs & ~first
    near = lambda mask: ndimage.binary_dilation(mask, np.ones((3, 3, 3)))
    beside = np.argwhere(near(other) & ~near(first) & ~slabs)[0]  # (z, y, x): in the gap, next to the other slab
    assert other.any() and np.array_equal(session.add_click(tuple(beside[::-1])).astype(bool), first)
    session.configure(refiners=("touching_islands",))  # the parts next to every click count
    assert np.array_equal(session.mask.astype(bool), slabs)
