"""The contrast edge: a mask's surface moved to the PET contrast of a blurred object."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from SegAnyPETLib.edges import contrast_edge, edge_levels
from SegAnyPETLib.metrics import dice

SPACING = (3.0, 4.0, 4.0)  # (z, y, x) mm


def blurred_ball(uptake: float, background: float = 1.0, radius_mm: float = 30.0, noise: float = 0.03):
    """A scanner's view of a uniformly active ball: 6 mm FWHM blur and a little noise; (image, truth)."""
    z, y, x = np.mgrid[:40, :32, :32]
    truth = ((z - 20) * SPACING[0]) ** 2 + ((y - 16) * SPACING[1]) ** 2 + ((x - 16) * SPACING[2]) ** 2 < radius_mm**2
    activity = np.where(truth, uptake, background)
    sigma = [6.0 / 2.355 / s for s in SPACING]
    image = ndimage.gaussian_filter(activity, sigma) + noise * np.random.default_rng(0).standard_normal(truth.shape)
    return image.astype(np.float32), truth


@pytest.mark.parametrize("uptake", [5.0, 0.2], ids=["hot", "cold"])
def test_a_mask_a_voxel_off_moves_to_the_edge(uptake):
    """Masks one voxel too large and one voxel too small both end close to the ball, hot or cold."""
    image, truth = blurred_ball(uptake)
    for wrong in (ndimage.binary_dilation(truth), ndimage.binary_erosion(truth)):
        refined = contrast_edge(image, wrong, SPACING, band_mm=4.1)
        assert dice(wrong, truth) < 0.9
        assert dice(refined, truth) > 0.97


def test_only_the_band_changes_and_never_against_a_click():
    image, truth = blurred_ball(5.0)
    wrong = ndimage.binary_dilation(truth, iterations=3)
    refined = contrast_edge(image, wrong, SPACING, band_mm=4.1)
    depth = ndimage.distance_transform_edt(wrong, sampling=SPACING)
    outside = ndimage.distance_transform_edt(~wrong, sampling=SPACING)
    far = (depth > 4.1) | (outside > 4.1)
    assert np.array_equal(refined[far], wrong[far])
    assert (refined != wrong).any()
    dropped = tuple(int(i[0]) for i in np.nonzero(wrong & ~refined))
    kept = contrast_edge(image, wrong, SPACING, band_mm=4.1, positive=[dropped], negative=[dropped])
    assert kept[dropped] and (kept != refined).sum() == 1  # a positive click's voxel is not taken out
    short = ndimage.binary_erosion(truth, iterations=2)
    grown = contrast_edge(image, short, SPACING, band_mm=4.1)
    added = tuple(int(i[0]) for i in np.nonzero(grown & ~short))
    kept = contrast_edge(image, short, SPACING, band_mm=4.1, positive=[added], negative=[added])
    assert not kept[added] and (kept != grown).sum() == 1  # a negative click's voxel is not added


def test_levels_of_a_large_and_a_small_object():
    """The object's level is its interior's median; a lesion without interior takes its hottest voxels."""
    image, truth = blurred_ball(5.0)
    inside, outside = edge_levels(image, truth, SPACING)
    assert inside == pytest.approx(5.0, abs=0.1) and outside == pytest.approx(1.0, abs=0.1)
    small_image, small = blurred_ball(5.0, radius_mm=6.0)
    inside, outside = edge_levels(small_image, small, SPACING)
    assert 1.5 < inside < small_image[small].max() and outside == pytest.approx(1.0, abs=0.1)


def test_nothing_to_compare_leaves_the_mask():
    image, truth = blurred_ball(5.0)
    assert not contrast_edge(image, np.zeros_like(truth), SPACING, 4.1).any()
    everything = np.ones_like(truth)
    assert contrast_edge(image, everything, SPACING, 4.1).all()  # no surroundings to compare with
    flat = np.ones_like(image)
    assert np.array_equal(contrast_edge(flat, truth, SPACING, 4.1), truth)  # no contrast
