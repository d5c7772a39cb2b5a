"""Headless trainer: SAM-Med3D's interactive recipe with SegAnyPET's CPCL, on one CPU or many GPUs.

    seganypet train --data DIR --arch tiny --out RUN [--strategy cpcl] [--config CFG.yaml] ...
    torchrun --nproc_per_node G -m SegAnyPETLib.train --data DIR --out RUN ...   (DDP: NCCL / gloo)

``RUN/last.pt`` (full training state, written atomically; also loadable as a model),
``RUN/best.pt`` (best validation Dice at one click, over ``val_targets`` when set),
``RUN/metrics.csv`` (one row per step), ``RUN/validation.csv`` and ``RUN/config.yaml``.
``--resume`` continues exactly from ``last.pt``. SIGINT (Ctrl-C) and SIGTERM end the run after the
current step with ``last.pt`` saved (exit status 128 + the signal); temporary files of a run killed
while writing are removed when it starts again.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
import yaml

from .errors import SegAnyPETError
from .model import ARCHITECTURES

logger = logging.getLogger(__name__)

DEFAULT_SPACING = {"vit_b_ori": (1.5, 1.5, 1.5), "small": (1.5, 1.5, 1.5), "tiny": (4.0, 4.0, 4.0), "tiny_conv": (4.0, 4.0, 4.0), "tiny_conv_clicks": (4.0, 4.0, 4.0)}


# ------------------------------------------------------------------------------------------ setup
def _distributed() -> Tuple[int, int, int]:
    """(rank, world size, local rank), initialising the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return dist.get_rank(), world, local_rank


def _device(config, local_rank: int, world: int) -> torch.device:
    from .device import resolve_device

    device = resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
    return device


def _load_cases(config, preprocessing, rank: int):
    """Training cases (HQ, LQ) and validation cases, as lists of TrainingCase / Case."""
    from .data import load_case, open_dataset
    from .training.data import TrainingCase

    dataset = open_dataset(config.data, split="train", noisy_labels=config.lq_labels if config.hq_cases is not None else None)
    targets = dataset.select_targets(config.targets)
    for option in ("target_weights", "val_targets"):
        unknown = [t for t in getattr(config, option) or () if t not in targets]
        if unknown:
            raise SegAnyPETError(f"{option} names {', '.join(unknown)}, which are not trained targets")
    cases = list(dataset.cases)
    if config.val_cases >= len(cases):
        raise SegAnyPETError(f"val_cases={config.val_cases} leaves no training case ({len(cases)} cases)")
    validation = cases[len(cases) - config.val_cases :] if config.val_cases else []
    training = cases[: len(cases) - config.val_cases]
    hq_count = len(training) if config.hq_cases is None else min(config.hq_cases, len(training))
    hq, lq = [], []
    for position, case in enumerate(training):
        noisy = position >= hq_count
        if noisy and case.noisy_label is None:
            raise SegAnyPETError(f"case {case.case_id} has no noisy label in {config.lq_labels}")
        image, label = load_case(case, noisy=noisy)
        case_targets = {t: v for t, v in case.labels.items() if t in targets}
        entry = TrainingCase.from_images(case.case_id, image, label, case_targets, config.min_target_voxels)
        (lq if noisy else hq).append(entry)
    if rank == 0:
        logger.info("%d HQ and %d LQ training cases, %d validation cases; targets: %s",
                    len(hq), len(lq), len(validation), ", ".join(targets))
    return hq, lq, validation, targets


def _loader(cases, preprocessing, config, rank: int, start: int, stream: int):
    from torch.utils.data import DataLoader

    from .training.data import CropSampleDataset, SequentialSampler, collate

    dataset = CropSampleDataset(
        cases, preprocessing, seed=config.seed * 1000 + stream, rank=rank, augment=config.augment,
        scale_range=config.scale_range, min_target_voxels=config.min_target_voxels,
        target_weights=config.target_weights, centre_shift=config.centre_shift,
    )
    return iter(DataLoader(
        dataset, batch_size=config.batch_size, sampler=SequentialSampler(start), collate_fn=collate,
        num_workers=config.num_workers, persistent_workers=config.num_workers > 0,
    ))


def _optimizer(model, config):
    encoder = [p for p in model.image_encoder.parameters() if p.requires_grad]
    others = [p for n, p in model.named_parameters() if not n.startswith("image_encoder.") and p.requires_grad]
    return torch.optim.AdamW(
        [{"params": encoder, "lr": config.lr}, {"params": others, "lr": config.lr * config.decoder_lr_scale}],
        lr=config.lr, weight_decay=config.weight_decay,
    )


class WarmupMultiStep:
    """MultiStepLR (x gamma at each milestone) after a linear warm-up over ``warmup`` steps."""

    def __init__(self, milestones: Sequence[int], gamma: float, warmup: int = 0) -> None:
        self.milestones, self.gamma, self.warmup = list(milestones), gamma, warmup

    def __call__(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        return warm * self.gamma ** sum(step >= m for m in self.milestones)


def _schedule(config, n_training_cases: int, world: int) -> Tuple[int, int, List[int]]:
    """(total steps, steps per epoch, MultiStepLR milestones in steps)."""
    samples = config.samples_per_epoch or n_training_cases
    per_step = config.batch_size * config.accumulation * world
    steps_per_epoch = max(1, math.ceil(samples / per_step))
    total = config.max_steps if config.max_steps else config.epochs * steps_per_epoch
    if config.milestone_steps:
        milestones = sorted({int(m) for m in config.milestone_steps})
    else:
        milestones = sorted({max(1, int(round(m * steps_per_epoch))) for m in config.milestones})
    return total, steps_per_epoch, milestones


# ------------------------------------------------------------------------------------------ train
def train(config, out: str, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Path:
    """Train (or resume) and return the run folder."""
    from tqdm import tqdm

    from .checkpoints import load_model, save_checkpoint
    from .io import cause_of, ensure_writable_folder, remove_stale_temporaries, write_text
    from .model import build_model
    from .preprocessing import PreprocessConfig
    from .training.interrupt import StopOnSignal, TrainingInterrupted
    from .training.losses import rampup_weight
    from .training.records import VALIDATION_COLUMNS, append_metrics, append_row, plot_curves, truncate_rows
    from .training.state import load_training_state, save_training_state
    from .training.step import InteractiveTrainingStep

    rank, world, local_rank = _distributed()
    device = _device(config, local_rank, world)
    run = Path(out)
    last_path = run / "last.pt"
    if rank == 0:
        ensure_writable_folder(run)
        if run.exists() and any(run.iterdir()) and not resume and not overwrite:
            raise SegAnyPETError(f"run folder {run} is not empty; pass --resume to continue or --overwrite to start again")
        if resume and not last_path.exists():
            raise SegAnyPETError(f"nothing to resume: {last_path} does not exist")
        try:
            run.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SegAnyPETError(f"cannot create the run folder {run}: {cause_of(error)}") from error
        remove_stale_temporaries(run)  # of a run killed while writing a checkpoint

    # Network and its input geometry (the same initial weights on every rank and every run).
    torch.manual_seed(config.seed)
    if config.init:
        model = load_model(config.init, device="cpu")
        if config.arch and model.config.name != config.arch and config.arch in ARCHITECTURES:
            logger.warning("--init is a %s network; using it instead of --arch %s", model.config.name, config.arch)
    else:
        model = build_model(config.arch)
    spacing = config.spacing or DEFAULT_SPACING.get(model.config.name, model.preprocessing.spacing)
    model.preprocessing = PreprocessConfig(spacing=tuple(spacing), crop_size=model.config.img_size)
    # New weights: an --init checkpoint's calibrated threshold and inference preset no longer apply
    # (the trained checkpoints run the official protocol until `seganypet calibrate --preset` says otherwise).
    model.mask_threshold, model.inference = 0.5, None
    model.image_encoder.grad_checkpointing = config.grad_checkpointing
    model.train().to(device)

    hq, lq, validation, targets = _load_cases(config, model.preprocessing, rank)
    supervised_pool = hq + lq if config.strategy == "finetune" else hq
    use_lq = bool(lq) and config.strategy != "finetune"
    if not supervised_pool:
        raise SegAnyPETError("no case with expert labels: hq_cases must be at least 1 for this strategy")
    total, steps_per_epoch, milestones = _schedule(config, len(hq) + len(lq), world)

    step_module = InteractiveTrainingStep(
        model, config.strategy, config.click_iterations, config.lq_click_iterations,
        config.n_prompts, config.beta, config.uncertainty_threshold,
    )
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupMultiStep(milestones, config.gamma, config.warmup_steps))
    amp_dtype = None
    if device.type == "cuda" and config.amp != "off":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    start_step, best = 0, -1.0
    if resume:
        start_step, best = load_training_state(last_path, model, optimizer, scheduler, scaler)
        if rank == 0:
            logger.info("resuming %s at step %d of %d", run, start_step, total)
    if rank == 0:
        write_text(run / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False), overwrite=True)
        truncate_rows(run, start_step)

    wrapped = step_module
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    samples_done = start_step * config.accumulation
    hq_batches = _loader(supervised_pool, model.preprocessing, config, rank, samples_done * config.batch_size, 0)
    lq_batches = _loader(lq, model.preprocessing, config, rank, samples_done * config.batch_size, 1) if use_lq else None

    val_every = config.val_every or steps_per_epoch
    checkpoint_every = config.checkpoint_every or steps_per_epoch
    rampup_steps = config.rampup_steps or total

    def save_state(step: int) -> None:
        save_training_state(last_path, model, optimizer, scheduler, scaler, step, best, config.to_dict(), _metadata(config, step))

    bar = tqdm(total=total, initial=start_step, desc="train", unit="step", disable=not progress or rank != 0)
    started = time.perf_counter()
    step = start_step
    try:
        with StopOnSignal() as stop:
            for step in range(start_step, total):
                lam = rampup_weight(step, rampup_steps, config.w_max, config.rampup)
                optimizer.zero_grad(set_to_none=True)
                sums: Dict[str, float] = {}
                for micro in range(config.accumulation):
                    hq_batch = _to(next(hq_batches), device)
                    lq_batch = _to(next(lq_batches), device) if lq_batches is not None else None
                    sync = contextlib.nullcontext() if world == 1 or micro == config.accumulation - 1 else wrapped.no_sync()
                    with sync:
                        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                            losses = wrapped(hq_batch, lq_batch, lam, (config.seed, rank, step, micro))
                        scaler.scale(losses["loss"] / config.accumulation).backward()
                    for key, value in losses.items():
                        sums[key] = sums.get(key, 0.0) + float(value.detach()) / config.accumulation
                if config.clip_grad:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                sums = _average_across_ranks(sums, device, world)
                done = step + 1
                if rank == 0:
                    append_metrics(run / "metrics.csv", {
                        "step": done, "epoch": done / steps_per_epoch, "lr": optimizer.param_groups[0]["lr"],
                        "lambda": lam, "seconds": time.perf_counter() - started, **sums,
                    })
                    bar.set_postfix(loss=f"{sums['loss']:.3f}", hq=f"{sums['loss_hq']:.3f}")
                    bar.update(1)
                if validation and (done % val_every == 0 or done == total):
                    dice, selection = _validate(model, validation, targets, config, device, rank, world)
                    if rank == 0:
                        append_row(run / "validation.csv", VALIDATION_COLUMNS,
                                    {"step": done, "dice_1_click": dice, "dice_1_click_val_targets": selection})
                        if selection > best:
                            best = selection
                            save_checkpoint(run / "best.pt", model, metadata={
                                **_metadata(config, done), "val_dice_1_click": dice, "val_dice_1_click_val_targets": selection})
                        logger.info("step %d: validation Dice at one click %.4f, %.4f on val_targets (best %.4f)",
                                    done, dice, selection, best)
                    model.train()
                if rank == 0 and (done % checkpoint_every == 0 or done == total):
                    save_state(done)
                    plot_curves(run)
                if done < total and _stop_requested(stop, device, world):
                    if rank == 0 and done % checkpoint_every:
                        save_state(done)
                        logger.warning("stopped by %s after step %d: %s holds it; continue with --resume",
                                       signal.Signals(stop.signum or signal.SIGTERM).name, done, last_path)
                    raise TrainingInterrupted(stop.signum or signal.SIGTERM, done)
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt:
        if rank == 0:
            logger.warning("interrupted: RUN/last.pt holds the last completed checkpoint; continue with --resume")
        raise
    finally:
        bar.close()
    if rank == 0 and not validation:
        save_checkpoint(run / "best.pt", model, metadata=_metadata(config, total))
    if world > 1:
        _check_ranks_in_sync(model, device, world)
    return run


def _stop_requested(stop, device, world: int) -> bool:
    """Whether a signal asked any rank to stop (all ranks agree, so all stop after the same step)."""
    if world == 1:
        return stop.signum is not None
    flag = torch.tensor([0.0 if stop.signum is None else 1.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _check_ranks_in_sync(model, device, world: int) -> None:
    """DDP keeps every replica identical; refuse to finish quietly if it did not."""
    checksum = torch.tensor([sum(float(p.detach().double().sum()) for p in model.parameters())], device=device, dtype=torch.float64)
    gathered = [torch.zeros_like(checksum) for _ in range(world)]
    dist.all_gather(gathered, checksum)
    values = [float(g) for g in gathered]
    if max(values) - min(values) > 1e-6 * max(1.0, abs(values[0])):
        raise RuntimeError(f"model replicas diverged across ranks (parameter sums {values})")
    logger.info("%d ranks finished with identical weights", world)
    dist.barrier()  # no rank tears the process group down while another still talks to it


def _metadata(config, step: int) -> Dict[str, Any]:
    return {"trained_steps": step, "strategy": config.strategy, "data": str(config.data), "targets": config.targets or "all",
            **{k: v for k, v in config.extra.items()}}


def _to(batch: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _average_across_ranks(values: Dict[str, float], device, world: int) -> Dict[str, float]:
    if world == 1:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / world for k, v in zip(keys, tensor.tolist())}


def _validate(model, cases, targets, config, device, rank: int, world: int) -> Tuple[float, float]:
    """Mean Dice at one click over the validation cases and (all, ``val_targets``) targets; rank 0
    computes, the others wait."""
    from .data import load_case
    from .evaluate import ModelSegmenter, evaluate_case

    scores = torch.full((2,), float("nan"), dtype=torch.float64)
    if rank == 0:
        model.eval()
        segmenter = ModelSegmenter(model, device=str(device), name="validation")
        results = []
        for case in cases:
            image, label = load_case(case)
            case_targets = {t: v for t, v in case.labels.items() if t in targets}
            results += evaluate_case([segmenter], case.case_id, image, _array(label), case_targets, (1,), config.seed)
        selected = [r for r in results if config.val_targets is None or r.target in config.val_targets]
        scores = torch.tensor([_mean_dice(results), _mean_dice(selected)], dtype=torch.float64)
    if world > 1:
        scores = scores.to(device)
        dist.broadcast(scores, 0)
    return float(scores[0]), float(scores[1])


def _mean_dice(results) -> float:
    return float(np.mean([r.dice for r in results])) if results else 0.0


def _array(image):
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(image)


# ------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="dataset folder (nnU-Net v2 with labelsTr/labelsLQ, AutoPET or SAM-Med3D)")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, metrics.csv)")
    parser.add_argument("--arch", choices=tuple(ARCHITECTURES), help="network (default from the config)")
    parser.add_argument("--init", help="start from this checkpoint or registry model")
    parser.add_argument("--strategy", choices=("finetune", "consistency", "cpcl"))
    parser.add_argument("--config", help="YAML file or shipped name (paper_cpcl, bundled_tiny)")
    parser.add_argument("--resume", action="store_true", help="continue exactly from RUN/last.pt")
    parser.add_argument("--overwrite", action="store_true", help="start again in a non-empty run folder")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (overrides --epochs)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--accumulation", type=int, help="gradient accumulation steps")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--targets", help="comma-separated target names (default: all labels)")
    parser.add_argument("--hq-cases", type=int, help="first N cases keep expert labels, the rest use --lq-labels")
    parser.add_argument("--lq-labels", help="folder of noisy labels (default labelsLQ)")
    parser.add_argument("--val-cases", type=int, help="hold out the last N cases for validation")
    parser.add_argument("--num-workers", type=int, help="data loader processes")
    parser.add_argument("--device", help="auto, cpu, cuda (torchrun: one GPU per process)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config option (YAML value)")
    parser.add_argument("--quiet-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace):
    from .options import parse_assignments
    from .training.config import load_config

    overrides = {
        "data": args.data, "arch": args.arch, "init": args.init, "strategy": args.strategy,
        "max_steps": args.max_steps, "epochs": args.epochs, "batch_size": args.batch_size,
        "accumulation": args.accumulation, "lr": args.lr, "hq_cases": args.hq_cases,
        "lq_labels": args.lq_labels, "val_cases": args.val_cases, "num_workers": args.num_workers,
        "device": args.device, "seed": args.seed,
        "targets": [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None,
    }
    overrides.update(parse_assignments(args.set))
    config = load_config(args.config, overrides)
    if not config.data:
        raise SegAnyPETError("no dataset: pass --data DIR (or data: in the config)")
    return config


def run_from_args(args: argparse.Namespace) -> int:
    from .training.interrupt import TrainingInterrupted

    config = config_from_args(args)
    if args.resume:  # the run's own config wins, so a resumed run is the same run
        from .training.config import load_config

        saved = Path(args.out) / "config.yaml"
        if saved.exists():
            config = load_config(str(saved), {"max_steps": args.max_steps} if args.max_steps else None)
    try:
        run = train(config, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet_progress)
    except TrainingInterrupted as stop:
        return 128 + stop.signum
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {run} (last.pt, best.pt, metrics.csv)")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point for ``python -m SegAnyPETLib.train`` and torchrun."""
    parser = argparse.ArgumentParser(prog="python -m SegAnyPETLib.train", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    try:
        return run_from_args(args)
    except SegAnyPETError as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
