"""Image embeddings of crops: encoder runs (device, precision, test-time mirroring, cancel) and their cache."""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import SimpleITK as sitk
import torch

from ..errors import Cancelled
from ..model import Sam3D
from ..preprocessing import CropGrid, extract_crop

# Every subset of the crop's three axes: the flips of test-time mirroring (the first is the identity).
MIRRORINGS: List[Tuple[int, ...]] = [tuple(a for a in range(3) if m >> a & 1) for m in range(8)]


class EmbeddingCache:
    """Encodes crops of one image, one embedding per mirroring, and keeps the recent ones.

    Args:
        model: the network (on ``device``).
        device: where the encoder runs.
        precision: ``"auto"`` (bfloat16/float16 autocast on CUDA) or ``"fp32"``.
        progress: optional ``callback(fraction, text)`` while the encoder runs.
    """

    max_cached = 16  # embeddings kept besides those in use; the least recently used go first

    def __init__(self, model: Sam3D, device: torch.device, precision: str = "auto",
                 progress: Optional[Callable[[float, str], None]] = None) -> None:
        self.model, self.device, self.precision, self.progress = model, device, precision, progress
        self.mirror = False
        self.runs = 0  # encoder runs since the counters were reset
        self.encoder_ms = 0.0
        self._cache: Dict[CropGrid, torch.Tensor] = {}  # insertion order: least recently used first
        self._cancel = threading.Event()

    @property
    def mirrorings(self) -> List[Tuple[int, ...]]:
        return MIRRORINGS if self.mirror else [()]

    def clear(self) -> None:
        self._cache.clear()

    def cached(self, grid: CropGrid) -> bool:
        """Whether ``grid``'s embeddings (with the current mirroring) are cached."""
        entry = self._cache.get(grid)
        return entry is not None and entry.shape[0] == len(self.mirrorings)

    def cancel(self) -> None:
        """Ask a running encoder (in another thread) to stop; it raises :class:`Cancelled`."""
        self._cancel.set()

    def reset_counters(self) -> None:
        self.runs, self.encoder_ms = 0, 0.0

    def get(self, image: sitk.Image, grid: CropGrid, in_use: Iterable[CropGrid] = ()) -> torch.Tensor:
        """The crop's embeddings (M, C, ...), one per mirroring, encoded now where not cached.

        The cache keeps the grids ``in_use`` and the ``max_cached`` most recently used others.
        """
        embedding = self._cache.pop(grid, None)
        if embedding is None or embedding.shape[0] != len(self.mirrorings):
            started = time.perf_counter()
            crop = torch.from_numpy(extract_crop(image, grid))
            embedding = self._encode(torch.stack([crop.flip(axes) for axes in self.mirrorings])[:, None])
            self.runs += 1
            self.encoder_ms += 1000 * (time.perf_counter() - started)
        self._cache[grid] = embedding  # the most recently used last
        keep = set(in_use) | {grid}
        stale = [g for g in self._cache if g not in keep]
        for old in stale[: max(len(self._cache) - self.max_cached, 0)]:
            del self._cache[old]
        return embedding

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """Run the image encoder block by block, reporting progress and honouring :meth:`cancel`."""
        self._cancel.clear()
        autocast = self.device.type == "cuda" and self.precision != "fp32"
        dtype = torch.bfloat16 if autocast and torch.cuda.is_bf16_supported() else torch.float16

        def progress(fraction: float) -> None:
            if self._cancel.is_set():
                raise Cancelled("encoder cancelled")
            self._report(fraction, "computing image embedding")

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=autocast):
            embedding = self.model.image_encoder(x.to(self.device), progress=progress)
        self._report(1.0, "image embedding ready")
        return embedding.float()

    def _report(self, fraction: float, text: str) -> None:
        if self.progress is not None:
            self.progress(fraction, text)
