"""Lesion mode: the focal uptake at a click, against the tissue the network segments around it."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from SegAnyPETLib.lesions import focal_uptake
from SegAnyPETLib.metrics import dice

SPACING = np.array([3.0, 4.0, 4.0])  # (z, y, x) mm
SHAPE = (48, 40, 40)


def ball(center_mm, radius_mm) -> np.ndarray:
    grid = np.stack(np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]], -1) * SPACING
    return ((grid - np.asarray(center_mm)) ** 2).sum(-1) <= radius_mm**2


def scan(activity: np.ndarray, noise: float = 0.03) -> np.ndarray:
    """6 mm FWHM blur and a little noise."""
    image = ndimage.gaussian_filter(activity, 6.0 / 2.355 / SPACING)
    return (image + noise * np.random.default_rng(0).standard_normal(SHAPE)).astype(np.float32)


def voxel(center_mm) -> tuple:
    return tuple(int(round(c / s)) for c, s in zip(center_mm, SPACING))


LIVER = ball((72, 80, 80), 55)
LESION = ball((72, 80, 92), 8)
NODULE = ball((72, 80, 40), 6)


def liver_scan() -> np.ndarray:
    """A warm organ (SUV 2) holding a hot lesion (8), in a background of 0.7; a hot nodule (6) outside."""
    return scan(np.select([LESION, NODULE, LIVER], [8.0, 6.0, 2.0], 0.7))


def test_a_click_on_a_lesion_gives_the_lesion_not_its_organ():
    """With the organ as the network's mask the lesion comes out, whether or not the network's mask
    holds the click; a second click adds a second lesion."""
    image = liver_scan()
    for context in (LIVER, np.zeros(SHAPE, bool)):
        region = focal_uptake(image, SPACING, context, [voxel((72, 80, 92))])
        assert dice(region, LESION) > 0.85 and not (region & NODULE).any()
    both = focal_uptake(image, SPACING, LIVER, [voxel((72, 80, 92)), voxel((72, 80, 40))])
    assert dice(both, LESION | NODULE) > 0.85


def test_the_organ_level_is_the_background():
    """A lesion of little contrast in a hot organ: the network's organ gives the background, a
    shell around the lesion (half in the organ, half outside it) would give too low a level."""
    organ = ball((72, 80, 80), 40)
    lesion = ball((72, 80, 104), 8)  # near the organ's edge
    image = scan(np.select([lesion, organ], [4.0, 2.2], 0.6))
    region = focal_uptake(image, SPACING, organ, [voxel((72, 80, 104))])
    assert dice(region, lesion) > 0.8
    without = focal_uptake(image, SPACING, np.zeros(SHAPE, bool), [voxel((72, 80, 104))])
    assert dice(without, lesion) < dice(region, lesion)


def test_a_negative_click_inside_the_region_is_left_out():
    image = liver_scan()
    click = voxel((72, 80, 92))
    region = focal_uptake(image, SPACING, LIVER, [click])
    edge = tuple(int(i) for i in np.argwhere(region & ~ndimage.binary_erosion(region))[0])
    cut = focal_uptake(image, SPACING, LIVER, [click], negative=[edge])
    assert not cut[edge] and cut[click] and 0 < cut.sum() < region.sum()


def test_a_region_that_leaks_into_a_large_structure_is_raised_until_it_is_focal():
    """A lesion touching a large structure hotter than 40 % of the lesion's contrast: the region
    stops at the lesion instead of taking the structure."""
    slab = np.zeros(SHAPE, bool)
    slab[:, :, :18] = True  # x < 72 mm: reaches the faces of the search box
    lesion = ball((72, 80, 76), 8)
    image = scan(np.select([lesion, slab], [8.0, 4.2], 1.0))
    region = focal_uptake(image, SPACING, np.zeros(SHAPE, bool), [voxel((72, 80, 80))])
    assert not (region & slab & ~ndimage.binary_dilation(lesion, iterations=2)).any()
    assert (region & lesion).sum() > 0.5 * lesion.sum()


def test_no_focal_uptake_gives_the_clicked_voxel_alone():
    image = scan(np.full(SHAPE, 1.0), noise=0.0)
    click = (20, 20, 20)
    region = focal_uptake(image, SPACING, np.zeros(SHAPE, bool), [click])
    assert region.sum() == 1 and region[click]
    assert not focal_uptake(image, SPACING, np.zeros(SHAPE, bool), []).any()
