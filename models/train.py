"""Training for both kinds of type model, after torchvision's references/detection.

    python -m models.train --kind head --epochs 30 --device auto
    python -m models.train --kind detector --epochs 20 --arch fasterrcnn_mobilenet_v3_large_fpn
    torchrun --nproc_per_node=4 -m models.train --kind detector   # DDP, no code changes

Plain loop: data from the database (people split into train / held-out), a MetricLogger of
SmoothedValues with a tqdm bar, per-epoch metrics into the run's ModelVersion row (so the
Models page shows them live), evaluation on the held-out people, checkpoint at the end.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import random
import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

DEFAULTS = {
    "head": {"epochs": 30, "batch_size": 16, "lr": 3e-3, "weight_decay": 1e-4, "max_side": 640},
    "detector": {"epochs": 20, "batch_size": 2, "lr": 0.01, "weight_decay": 1e-4, "max_side": 640},
}


# ----------------------------------------------------------------------------- metric logger


class SmoothedValue:
    """Track a series of values; the window's median/avg and the global average."""

    def __init__(self, window_size: int = 20, fmt: str = "{median:.4f} ({global_avg:.4f})"):
        self.deque: deque = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0
        self.fmt = fmt

    def update(self, value: float, n: int = 1) -> None:
        self.deque.append(value)
        self.count += n
        self.total += value * n

    @property
    def median(self) -> float:
        return float(np.median(self.deque)) if self.deque else float("nan")

    @property
    def avg(self) -> float:
        return float(np.mean(self.deque)) if self.deque else float("nan")

    @property
    def global_avg(self) -> float:
        return self.total / max(self.count, 1)

    @property
    def value(self) -> float:
        return self.deque[-1] if self.deque else float("nan")

    def __str__(self) -> str:
        return self.fmt.format(median=self.median, avg=self.avg, global_avg=self.global_avg, value=self.value)


class MetricLogger:
    def __init__(self, delimiter: str = "  "):
        self.meters: dict[str, SmoothedValue] = defaultdict(SmoothedValue)
        self.delimiter = delimiter

    def update(self, **kwargs) -> None:
        for k, v in kwargs.items():
            if isinstance(v, torch.Tensor):
                v = v.item()
            self.meters[k].update(float(v))

    def averages(self) -> dict:
        return {k: round(m.global_avg, 6) for k, m in self.meters.items()}

    def __str__(self) -> str:
        return self.delimiter.join(f"{name}: {meter}" for name, meter in self.meters.items())

    def log_every(self, iterable, header: str = "", disable: bool = False):
        """Iterate with a tqdm progress bar whose postfix shows the smoothed meters."""
        from tqdm import tqdm

        bar = tqdm(iterable, desc=header, leave=False, disable=disable, dynamic_ncols=True, file=sys.stderr)
        for i, item in enumerate(bar):
            yield item
            if i % 5 == 0 or i == len(bar) - 1:
                bar.set_postfix_str(" ".join(f"{k}={m.median:.3f}" for k, m in self.meters.items()))
        bar.close()


# ----------------------------------------------------------------------------- distributed


def init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return rank, world, local


def reduce_mean(value: float, world: int) -> float:
    if world <= 1:
        return value
    t = torch.tensor([value], device="cuda" if torch.cuda.is_available() else "cpu")
    dist.all_reduce(t)
    return float(t.item() / world)


# ----------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    model_version_id: int | None
    model: object
    metrics: dict
    history: list
    step_losses: list = field(default_factory=list)
    seconds: float = 0.0


def _lr_lambda(total_steps: int, warmup: int):
    def f(step):
        if step < warmup:
            return 0.001 + (1 - 0.001) * step / max(1, warmup)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return f


def train(
    kind: str = "head",
    epochs: int | None = None,
    device: str = "auto",
    url: str | None = None,
    store=None,
    progress: Callable[[float, str], None] | None = None,
    *,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    arch: str | None = None,
    weights: str | None = None,
    max_side: int | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    max_steps: int | None = None,
    eval_every: int | None = None,
    workers: int = 0,
    register: bool = True,
    promote: bool = False,
    split: tuple | None = None,
    synthetic: bool | None = None,
    augment: bool = True,
    quiet: bool = False,
    run_id: int | None = None,
) -> TrainResult:
    """Train one model of ``kind`` on the database's reference photos and evaluate it on held-out
    people. With ``register`` the run is a ModelVersion row (created now, updated per epoch) and
    its weights go to the store; ``progress(fraction, message)`` is called as it goes.
    ``run_id`` continues an existing ``running`` row (the Models page creates it first)."""
    from models import registry
    from models.dataset import (DetectionDataset, ImageBank, collate, load_samples, split_by_person)
    from models.evaluate import evaluate_samples
    from models.runtime import pick_device

    if kind not in DEFAULTS:
        raise ValueError(f"unknown kind {kind!r}: head or detector")
    d = DEFAULTS[kind]
    epochs = epochs or d["epochs"]
    batch_size = batch_size or d["batch_size"]
    lr = lr or d["lr"]
    weight_decay = d["weight_decay"] if weight_decay is None else weight_decay
    max_side = max_side or d["max_side"]
    rank, world, local = init_distributed()
    main_process = rank == 0
    if world > 1 and torch.cuda.is_available():
        dev = torch.device(f"cuda:{local}")
    else:
        dev = pick_device(device)
    torch.manual_seed(seed + rank)
    random.seed(seed + rank)
    store = store or registry.default_store()
    started = time.time()

    def report(fraction: float, message: str) -> None:
        if progress and main_process:
            progress(min(1.0, max(0.0, fraction)), message)

    snapshot = load_samples(url, synthetic=synthetic)
    if split is not None:
        train_samples, val_samples = split
    else:
        train_samples, val_samples = split_by_person(snapshot.samples, val_fraction, seed)
    if not train_samples or not val_samples:
        raise ValueError(f"not enough data to train: {len(snapshot.samples)} usable photos ({snapshot.skipped})")
    if kind == "head":
        from models.head import DEFAULT_CONFIG as HEAD_CONFIG

        model_config = {**HEAD_CONFIG, "max_side": max_side}
    else:
        from models.detector import DEFAULT_CONFIG as DET_CONFIG

        model_config = {**DET_CONFIG, "max_side": max_side, "arch": arch or DET_CONFIG["arch"],
                        "min_size": min_size, "max_size": max_size}
    config = {
        "kind": kind, "model": model_config, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "seed": seed, "val_fraction": val_fraction, "device": str(dev),
        "world_size": world, "weights": weights, "max_steps": max_steps, "augment": augment,
        "torch": torch.__version__,
    }
    data_snapshot = snapshot.describe()
    data_snapshot["split"] = {
        "by": "person",
        "train_people": sorted({s.person_key for s in train_samples}),
        "val_people": sorted({s.person_key for s in val_samples}),
        "train_photos": len(train_samples),
        "val_photos": len(val_samples),
    }
    if register and main_process:
        if run_id is None:
            run_id = registry.create_run(kind, config, data_snapshot, url=url, message="loading photos")
        else:
            registry.update_run(run_id, url=url, config=config, data_snapshot=data_snapshot, message="loading photos")
    else:
        run_id = None

    try:
        bank = ImageBank(store, max_side)
        bank.load(train_samples + val_samples, lambda i, n: report(0.05 * i / n, f"loading photos {i}/{n}"))

        if kind == "head":
            from models.head import HeadDataset, HeadModel, collate_head, head_loss

            model = HeadModel(model_config, device=dev)
            dataset = HeadDataset(train_samples, bank, model_config, train=augment, seed=seed + rank)
            collate_fn = collate_head
        else:
            from models.detector import DetectorModel, load_local_weights

            model = DetectorModel(model_config, device=dev)
            if weights:
                load_local_weights(model.net, weights)
            dataset = DetectionDataset(train_samples, bank, train=augment, seed=seed + rank)
            collate_fn = collate

        net = model.net
        if world > 1:
            net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[local] if dev.type == "cuda" else None)
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=True, seed=seed) if world > 1 else None
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler, collate_fn=collate_fn,
            num_workers=workers, drop_last=kind == "head" and len(dataset) > batch_size,
        )
        params = [p for p in net.parameters() if p.requires_grad]
        if kind == "head":
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        else:
            optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
        steps_per_epoch = len(loader)
        total_steps = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
        warmup = 0 if kind == "head" else min(100, max(1, total_steps // 10))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total_steps, warmup))
        eval_every = eval_every if eval_every is not None else (1 if kind == "head" else 0)

        history: list[dict] = []
        step_losses: list[float] = []
        step = 0
        last_write = 0.0
        for epoch in range(epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            net.train()
            logger = MetricLogger()
            epoch_start = time.time()
            header = f"{kind} epoch {epoch + 1}/{epochs}"
            for batch in logger.log_every(loader, header, disable=quiet or not main_process):
                if kind == "head":
                    crops, labels = batch
                    loss_dict = head_loss(net, crops.to(dev), labels.to(dev))
                else:
                    images, targets = batch
                    images = [im.to(dev) for im in images]
                    targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
                    loss_dict = net(images, targets)
                loss = sum(loss_dict.values())
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower --lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if kind == "detector":
                    torch.nn.utils.clip_grad_norm_(params, 10.0)
                optimizer.step()
                scheduler.step()
                step += 1
                step_losses.append(loss.item())
                logger.update(loss=loss, lr=optimizer.param_groups[0]["lr"], **loss_dict)
                fraction = 0.05 + 0.85 * step / max(1, total_steps)
                if time.time() - last_write > 2.0:
                    report(fraction, f"epoch {epoch + 1}/{epochs}, loss {logger.meters['loss'].median:.3f}")
                    if run_id is not None:
                        registry.update_run(run_id, url=url, progress=fraction,
                                            message=f"epoch {epoch + 1}/{epochs}, step {step}/{total_steps}")
                    last_write = time.time()
                if max_steps is not None and step >= max_steps:
                    break
            entry = {"epoch": epoch + 1, "seconds": round(time.time() - epoch_start, 2), "steps": step}
            entry.update({k: round(reduce_mean(v, world), 6) for k, v in logger.averages().items()})
            if main_process and eval_every and (epoch + 1) % eval_every == 0:
                entry.update(_quick_val(model, val_samples, bank))
            history.append(entry)
            if main_process:
                if not quiet:
                    print(f"[{kind}] epoch {epoch + 1}/{epochs}  " +
                          "  ".join(f"{k}={v}" for k, v in entry.items() if k not in ("epoch",)), file=sys.stderr)
                report(0.05 + 0.85 * step / max(1, total_steps), f"epoch {epoch + 1}/{epochs} done")
                if run_id is not None:
                    registry.update_run(run_id, url=url, history=history, progress=0.05 + 0.85 * step / max(1, total_steps),
                                        message=f"epoch {epoch + 1}/{epochs} done")
            if max_steps is not None and step >= max_steps:
                break

        metrics: dict = {}
        if main_process:
            report(0.92, "evaluating on held-out people")
            if run_id is not None:
                registry.update_run(run_id, url=url, progress=0.92, message="evaluating on held-out people")
            metrics = evaluate_samples(model, val_samples, bank, snapshot.synthetic_labels)
            metrics["train_seconds"] = round(time.time() - started, 1)
            metrics["final_loss"] = history[-1].get("loss") if history else None
            if run_id is not None:
                from models.typemodel import save_checkpoint

                registry.finish_run(run_id, save_checkpoint(model), metrics, history, url=url, store=store)
                model.model_version_id = run_id
                if promote:
                    registry.promote(run_id, url=url)
            report(1.0, "done")
        if world > 1:
            dist.barrier()
        model.net.eval()
        return TrainResult(run_id, model, metrics, history, step_losses, time.time() - started)
    except BaseException as exc:
        if run_id is not None:
            registry.fail_run(run_id, f"{type(exc).__name__}: {exc}", url=url)
        raise


_background_lock = threading.Lock()
_background: dict[int, threading.Thread] = {}


def active_background_runs() -> list[int]:
    """Ids of runs training in a background thread of this process."""
    with _background_lock:
        return [run_id for run_id, thread in _background.items() if thread.is_alive()]


def start_background(kind: str = "head", epochs: int | None = None, url: str | None = None, store=None,
                     **kwargs) -> int:
    """Start a registered training run in a daemon thread; returns its ModelVersion id at once.

    The run writes progress and history to its row, so any page (or a reload) can follow it.
    One background run at a time per process: a second call raises RuntimeError."""
    from models import registry

    with _background_lock:
        if any(t.is_alive() for t in _background.values()):
            raise RuntimeError("a training run is already going on in this app; wait for it to finish")
        run_id = registry.create_run(kind, {"kind": kind, "epochs": epochs, **kwargs}, url=url, message="queued")

        def target():
            try:
                train(kind=kind, epochs=epochs, url=url, store=store, run_id=run_id, quiet=True, **kwargs)
            except BaseException as exc:  # keep the thread quiet; the row says what happened
                row = registry.get_run(run_id, url=url)
                if row is not None and row.status == "running":
                    registry.fail_run(run_id, f"{type(exc).__name__}: {exc}", url=url)

        thread = threading.Thread(target=target, name=f"train-{kind}-{run_id}", daemon=True)
        _background[run_id] = thread
        thread.start()
        return run_id


@torch.no_grad()
def _quick_val(model, val_samples, bank) -> dict:
    """Held-out type accuracy per epoch (head: cheap; detector: only with --eval-every)."""
    from models.evaluate import gate_stand_in
    from models.typemodel import classify

    hits = []
    for s in val_samples:
        image, _ = bank.get(s)
        _, landmarks = bank.get(s, landmarks=True)
        out = classify(image, gate_stand_in(landmarks, image), model)
        hits.append(out.result.type_index == s.type_index)
    model.net.train()
    return {"val_type_accuracy": round(float(np.mean(hits)), 4)}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a facetype type model.", add_help=True)
    p.add_argument("--kind", default="head", choices=["head", "detector"])
    p.add_argument("--epochs", type=int, default=None, help="default: 30 (head), 20 (detector)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("-b", "--batch-size", type=int, default=None, help="per process")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--wd", "--weight-decay", dest="weight_decay", type=float, default=None)
    p.add_argument("--arch", default=None, help="detector: fasterrcnn_mobilenet_v3_large_320_fpn (default), "
                   "fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn")
    p.add_argument("--weights", default=None, help="detector: a local checkpoint file to start from")
    p.add_argument("--max-side", type=int, default=None, help="downscale photos to this longest side")
    p.add_argument("--min-size", type=int, default=None, help="detector transform min size")
    p.add_argument("--max-size", type=int, default=None, help="detector transform max size")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke runs)")
    p.add_argument("--eval-every", type=int, default=None, help="held-out accuracy every N epochs")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-j", "--workers", type=int, default=0)
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--no-register", dest="register", action="store_false", help="do not store the run")
    p.add_argument("--promote", action="store_true", help="serve the model when the run finishes")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from models.evaluate import format_metrics

    result = train(
        kind=args.kind, epochs=args.epochs, device=args.device, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, arch=args.arch, weights=args.weights, max_side=args.max_side,
        min_size=args.min_size, max_size=args.max_size, max_steps=args.max_steps, eval_every=args.eval_every,
        val_fraction=args.val_fraction, seed=args.seed, workers=args.workers, augment=args.augment,
        register=args.register, promote=args.promote,
    )
    if result.metrics:
        print(f"\nmodel {result.model_version_id} ({args.kind}) trained in "
              f"{datetime.timedelta(seconds=int(result.seconds))}")
        print(format_metrics(result.metrics))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
