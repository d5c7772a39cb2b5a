"""An object's crops: where they lie, decoding their prompts, and blending them onto the input grid.

Each crop is a cubic grid of the model's spacing (:class:`~SegAnyPETLib.preprocessing.CropGrid`). Its
prediction is decoded from its cached embedding, its points and its previous low-resolution logits
(the official mask prompt; zeros at its first decode). On the input grid a crop covers its footprint
(``region``); where crops overlap, their probabilities are blended with a Gaussian weight that
favours each crop's centre (as nnU-Net merges sliding windows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Set, Tuple

import numpy as np
import SimpleITK as sitk
import torch

from ..metrics import dice
from ..model import Sam3D
from ..model.common import upsample_logits
from ..preprocessing import CropGrid, CropToImage, PreprocessConfig, crop_coordinates, crop_footprint
from .embeddings import EmbeddingCache

Box = Tuple[slice, slice, slice]  # (z, y, x) slices of the input grid


@dataclass
class Point:
    """A prompt point: LPS millimetres and 1 (positive) or 0 (negative)."""

    lps: np.ndarray
    label: int


@dataclass
class Crop:
    """One crop of an object: its grid, footprint on the input grid, seed points and last logits."""

    grid: CropGrid
    region: Optional[Box]
    seeds: List[Point] = field(default_factory=list)
    logits: Optional[torch.Tensor] = None
    _probability: Optional[Tuple[torch.Tensor, np.ndarray]] = None  # (logits, probability on region)
    _weight: Optional[np.ndarray] = None  # blending weight on region
    _to_image: Optional[CropToImage] = None
    _inside: Optional[np.ndarray] = None  # on region: the voxels whose centres lie in the crop


@dataclass
class MaskUpdate:
    """The box of the input grid (z, y, x slices) that the last change may have touched, and the
    object's mask there (uint8); outside it the mask is as before."""

    box: Box
    mask: np.ndarray


def place_crop(point: np.ndarray, preprocessing: PreprocessConfig, image: sitk.Image, placement: str) -> CropGrid:
    """A new crop for ``point`` (LPS mm): ``at_click`` (official) or ``inside_image``."""
    if placement == "at_click":
        return CropGrid.at_click(point, preprocessing, image)
    return CropGrid.around(point, preprocessing, image)


def gaussian_importance(size: int, sigma_scale: float = 0.125) -> np.ndarray:
    """Separable Gaussian weight over a cubic crop, highest at the centre, never zero."""
    axis = np.arange(size) - (size - 1) / 2.0
    profile = np.exp(-0.5 * (axis / (sigma_scale * size)) ** 2)
    weight = profile[:, None, None] * profile[None, :, None] * profile[None, None, :]
    return np.maximum(weight / weight.max(), 1e-3).astype(np.float32)


class ObjectCrops:
    """The crops of the object being segmented, over one image.

    Args:
        model: the network; ``embeddings``: the session's encoder and cache; ``image``: the input.
        placement: ``at_click`` or ``inside_image`` (:func:`place_crop`); ``paste``: ``nearest`` or
            ``trilinear`` (how a crop's probability reaches the input grid); ``threshold``: the mask's.
    """

    def __init__(self, model: Sam3D, embeddings: EmbeddingCache, image: sitk.Image, placement: str,
                 paste: str, threshold: float) -> None:
        self.model, self.embeddings, self.image = model, embeddings, image
        self.placement, self.paste, self.threshold = placement, paste, threshold
        self.crops: List[Crop] = []
        self.rejected: Set[CropGrid] = set()  # added crops this object dropped: not decoded again
        self._weight = gaussian_importance(model.preprocessing.crop_size)

    def __len__(self) -> int:
        return len(self.crops)

    def place(self, point: np.ndarray) -> CropGrid:
        return place_crop(point, self.model.preprocessing, self.image, self.placement)

    def containing(self, lps: np.ndarray) -> List[Crop]:
        return [crop for crop in self.crops if crop.grid.contains(lps)]

    def add(self, grid: CropGrid, seeds: Sequence[Point] = ()) -> Crop:
        """A new crop, encoded now (a cancelled encoder leaves no crop behind)."""
        self.embeddings.get(self.image, grid, self.grids())
        crop = Crop(grid, crop_footprint(grid, self.image), list(seeds))
        self.crops.append(crop)
        return crop

    def remove(self, crop: Crop) -> None:
        self.crops.remove(crop)
        self.rejected.add(crop.grid)

    def grids(self) -> List[CropGrid]:
        return [crop.grid for crop in self.crops]

    def predict(self, crop: Crop, points: Sequence[Point]) -> None:
        """Decode ``points`` (those in the crop, after its seeds) with the crop's previous logits;
        with mirroring, one batch over the mirrorings, averaged."""
        device = self.embeddings.device
        low = self.model.config.low_res_size
        previous = crop.logits if crop.logits is not None else torch.zeros(1, 1, low, low, low, device=device)
        prompts = crop.seeds + [p for p in points if crop.grid.contains(p.lps)]
        coords = torch.as_tensor(crop.grid.nearest_index(np.array([p.lps for p in prompts])), dtype=torch.float32,
                                 device=device)[None]
        labels = torch.as_tensor([p.label for p in prompts], dtype=torch.int64, device=device)[None]
        mirrorings = self.embeddings.mirrorings
        top = crop.grid.size - 1
        with torch.inference_mode():
            logits, _ = self.model.decode(
                self.embeddings.get(self.image, crop.grid, self.grids()),  # encoded again if mirroring changed
                torch.cat([_mirror_points(coords, axes, top) for axes in mirrorings]),
                labels.expand(len(mirrorings), -1),
                torch.cat([previous.flip([2 + a for a in axes]) for axes in mirrorings]),
            )
            logits = torch.stack([l.flip([1 + a for a in axes]) for l, axes in zip(logits, mirrorings)])
        crop.logits = logits.mean(0, keepdim=True)

    def probability(self, crop: Crop) -> np.ndarray:
        """Sigmoid of the logits upsampled to the crop (trilinear, as the official code), (i, j, k)."""
        with torch.inference_mode():
            upsampled = upsample_logits(crop.logits, (crop.grid.size,) * 3)
            return torch.sigmoid(upsampled)[0, 0].float().cpu().numpy()

    def mask_in_crop(self, crop: Crop) -> np.ndarray:
        return self.probability(crop) > self.threshold

    def region_values(self, crop: Crop) -> Tuple[np.ndarray, np.ndarray]:
        """The crop's probability and blending weight on its footprint (cached per logits)."""
        if crop._to_image is None:
            crop._to_image = CropToImage(crop.grid, self.image, crop.region, mode=self.paste)
            crop._weight = crop._to_image(self._weight)
        if crop._probability is None or crop._probability[0] is not crop.logits:
            crop._probability = (crop.logits, crop._to_image(self.probability(crop)))
        return crop._probability[1], crop._weight

    def inside(self, shape: Sequence[int]) -> np.ndarray:
        """The voxels of the input grid (``shape``, z, y, x) whose centres lie in a crop (bool), as
        :meth:`CropGrid.contains` says (computed once per crop)."""
        inside = np.zeros(tuple(shape), dtype=bool)
        for crop in self.crops:
            if crop.region is not None:
                if crop._inside is None:
                    index = crop_coordinates(crop.grid, self.image, crop.region)
                    crop._inside = np.all((index >= -0.5) & (index <= crop.grid.size - 0.5), axis=-1)
                inside[crop.region] |= crop._inside
        return inside

    def box(self) -> Optional[Box]:
        """(z, y, x) slices of the input grid around every crop; None without crops."""
        return union_box([crop.region for crop in self.crops if crop.region is not None])

    def network_mask(self, box: Box) -> np.ndarray:
        """The blended mask of every crop over ``box`` (bool); with ``nearest`` paste-back and one crop,
        its own probability thresholded (the official mask)."""
        covering = [crop for crop in self.crops if crop.logits is not None and intersect(box, crop.region)]
        if self.paste == "nearest" and len(covering) == 1:
            crop = covering[0]
            mask = np.zeros([s.stop - s.start for s in box], dtype=bool)
            overlap = intersect(box, crop.region)
            prob = self.region_values(crop)[0]
            mask[relative(overlap, box)] = prob[relative(overlap, crop.region)] > self.threshold
            return mask
        numerator = np.zeros([s.stop - s.start for s in box], np.float32)
        denominator = np.zeros_like(numerator)
        for crop in self.crops:
            overlap = intersect(box, crop.region)
            if overlap is None or crop.logits is None:
                continue
            prob, weight = self.region_values(crop)
            inner, outer = relative(overlap, crop.region), relative(overlap, box)
            numerator[outer] += prob[inner] * weight[inner]
            denominator[outer] += weight[inner]
        with np.errstate(invalid="ignore", divide="ignore"):
            merged = np.where(denominator > 0, numerator / np.maximum(denominator, 1e-12), 0.0)
        return merged > self.threshold

    def overlap_dice(self, a: Crop, b: Crop) -> float:
        """Dice of two crops' masks where both crops see the image."""
        overlap = intersect(a.region, b.region)
        if overlap is None:
            return 0.0
        masks = [self.region_values(crop)[0][relative(overlap, crop.region)] > self.threshold for crop in (a, b)]
        return dice(*masks)

    def state(self) -> list:
        """What :meth:`restore` needs to bring the crops back (the logits are not copied: they are replaced, never changed)."""
        return [(crop, crop.logits, list(crop.seeds)) for crop in self.crops]

    def restore(self, state: list) -> None:
        self.crops = []
        for crop, logits, seeds in state:
            crop.logits, crop.seeds = logits, list(seeds)
            self.crops.append(crop)


def _mirror_points(coords: torch.Tensor, axes: Sequence[int], top: int) -> torch.Tensor:
    """Crop voxel coordinates (B, N, 3) after flipping the crop along ``axes`` (indices 0..top)."""
    mirrored = coords.clone()
    for axis in axes:
        mirrored[..., axis] = top - mirrored[..., axis]
    return mirrored


def relative(inner: Box, outer: Box) -> Box:
    """``inner`` (slices of the input grid) as slices into an array that covers ``outer``."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))


def intersect(a: Optional[Box], b: Optional[Box]) -> Optional[Box]:
    if a is None or b is None:
        return None
    out = tuple(slice(max(x.start, y.start), min(x.stop, y.stop)) for x, y in zip(a, b))
    return None if any(s.stop <= s.start for s in out) else out


def union_box(boxes: Sequence[Optional[Box]]) -> Optional[Box]:
    """The smallest box holding every box given (None when none is)."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))


def grow_box(box: Box, margin: Sequence[int], shape: Sequence[int]) -> Box:
    """``box`` grown by ``margin`` voxels per axis, inside an array of ``shape``."""
    return tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(box, margin, shape))
