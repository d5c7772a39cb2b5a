"""One training step as a module: simulated clicks, SAM-Med3D's loss and the CPCL terms.

Everything that needs gradients runs inside :meth:`InteractiveTrainingStep.forward`, so the module
can be wrapped in DistributedDataParallel as a whole.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set

import torch
from torch import nn

from ..clicks import next_clicks_batch
from ..model import Sam3D
from ..model.common import upsample_logits
from .losses import consistency_loss, dice_ce_loss, predictive_entropy, rectify_labels


def mask_only_iterations(iterations: int, generator: torch.Generator) -> Set[int]:
    """Iterations that get the mask prompt only (no points).

    SAM-Med3D (11 iterations): the last one and one random iteration in 2..8. Shorter loops keep
    only the last one, so that at least the first ``iterations - 1`` get growing point sets.
    """
    chosen: Set[int] = set()
    if iterations >= 2:
        chosen.add(iterations - 1)
    if iterations >= 6:
        chosen.add(int(torch.randint(2, min(8, iterations - 2) + 1, (1,), generator=generator)))
    return chosen


class InteractiveTrainingStep(nn.Module):
    """Wraps a :class:`Sam3D`; ``forward`` returns the losses of one micro-batch."""

    def __init__(
        self,
        model: Sam3D,
        strategy: str = "cpcl",
        click_iterations: int = 11,
        lq_click_iterations: int = 3,
        n_prompts: int = 3,
        beta: float = 1.0,
        uncertainty_threshold: float = 0.6,
    ) -> None:
        super().__init__()
        self.model = model
        self.strategy = strategy
        self.click_iterations = click_iterations
        self.lq_click_iterations = lq_click_iterations
        self.n_prompts = n_prompts
        self.beta = beta
        self.uncertainty_threshold = uncertainty_threshold

    def forward(self, hq: Dict, lq: Optional[Dict], lam: float, seed: Sequence[int]) -> Dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(_fold(seed))
        loss_hq = self.supervised(hq["image"], hq["target"], generator)
        zero = loss_hq.new_zeros(())
        loss_cps, loss_lq = zero, zero
        if lq is not None and self.strategy in ("consistency", "cpcl"):
            loss_cps, loss_lq = self.cross_prompting(lq["image"], lq["target"], generator)
        loss = loss_hq + lam * (loss_cps + self.beta * loss_lq)
        return {"loss": loss, "loss_hq": loss_hq.detach(), "loss_cps": loss_cps.detach(), "loss_lq": loss_lq.detach()}

    # ------------------------------------------------------------------ pieces
    def supervised(self, images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """DiceCE summed over ``click_iterations`` simulated clicks (SAM-Med3D's recipe)."""
        embedding = self.model.image_encoder(images)
        mask_only = mask_only_iterations(self.click_iterations, generator)
        loss = embedding.new_zeros(())
        for logits in self._click_loop(embedding, targets, self.click_iterations, mask_only, generator):
            loss = loss + dice_ce_loss(logits, targets)
        return loss

    def cross_prompting(self, images: torch.Tensor, noisy: torch.Tensor, generator: torch.Generator):
        """L_cps over ``n_prompts`` prompt sets per image and the LQ loss on (rectified) noisy labels."""
        embedding = self.model.image_encoder(images)
        logits: List[torch.Tensor] = []
        for _ in range(self.n_prompts):
            *_, last = self._click_loop(embedding, noisy, self.lq_click_iterations, set(), generator, grad_last_only=True)
            logits.append(last)
        probabilities = [torch.sigmoid(l.float()) for l in logits]
        loss_cps = consistency_loss(probabilities)
        target = noisy
        if self.strategy == "cpcl":
            mean = torch.stack(probabilities).mean(dim=0).detach()
            target = rectify_labels(noisy, predictive_entropy(mean), self.uncertainty_threshold)
        loss_lq = sum(dice_ce_loss(l, target) for l in logits) / len(logits)
        return loss_cps, loss_lq

    def _click_loop(self, embedding, targets, iterations, mask_only, generator, grad_last_only=False):
        """Yield full-resolution logits for each simulated click iteration."""
        model = self.model
        batch = targets.shape[0]
        size = targets.shape[2:]
        low = model.config.low_res_size
        previous = embedding.new_zeros(batch, 1, low, low, low)
        coords = embedding.new_zeros(batch, 0, 3)
        labels = torch.zeros(batch, 0, dtype=torch.long, device=embedding.device)
        truth = targets[:, 0] > 0.5
        prediction = None
        dense_pe = model.prompt_encoder.get_dense_pe()
        for iteration in range(iterations):
            track = not grad_last_only or iteration == iterations - 1
            with torch.set_grad_enabled(torch.is_grad_enabled() and track):
                points = None
                if iteration not in mask_only:
                    new_coords, new_labels = next_clicks_batch(prediction, truth, generator)
                    coords = torch.cat([coords, new_coords.to(coords.device, coords.dtype)], dim=1)
                    labels = torch.cat([labels, new_labels.to(labels.device)], dim=1)
                    points = (coords, labels)
                sparse, dense = model.prompt_encoder(points=points, boxes=None, masks=previous)
                low_logits, _ = model.mask_decoder(
                    image_embeddings=embedding if track else embedding.detach(),
                    image_pe=dense_pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=False,
                )
                logits = upsample_logits(low_logits, size)
            prediction = logits[:, 0].detach() > 0
            previous = low_logits.detach()
            if track:
                yield logits


def _fold(seed: Sequence[int]) -> int:
    """A 63-bit seed from several integers (seed, rank, step, micro-batch)."""
    value = 0x9E3779B97F4A7C15
    for part in seed:
        value = (value * 6364136223846793005 + int(part) + 1442695040888963407) & ((1 << 63) - 1)
    return value
