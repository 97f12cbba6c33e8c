"""Training for every kind of type model, after torchvision's references/detection.

    python -m models.train --kind head --epochs 15 --device auto
    python -m models.train --kind detector --epochs 20 --arch fasterrcnn_mobilenet_v3_large_fpn
    torchrun --nproc_per_node=4 -m models.train --kind detector   # DDP, no code changes
    python -m models.train --queue --kind detector --epochs 20    # a job for a worker (models/worker.py)

Plain loop: data from the database (people split into train / held-out), ``train_one_epoch``
with a MetricLogger, per-epoch metrics into the run's ModelVersion row (so the Models page shows
them live), evaluation on the held-out people, checkpoint at the end. The kind's recipe says
how its data, loss and optimiser are made.
"""

from __future__ import annotations

import argparse
import datetime
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.distributed as dist

from app.core.vocabulary import RunStatus
from models import registry
from models.kinds import KINDS, model_class, recipe
from models.kinds.base import save_checkpoint
from models.kinds.detector import load_local_weights
from models.runtime import pick_device
from models.training.data import ImageBank, load_samples, split_by_person, survey_type_shares, type_counts
from models.training.engine import (
    MetricLogger,
    calibrate,
    evaluate,
    format_metrics,
    init_distributed,
    lr_lambda,
    quick_val,
    reduce_mean,
    train_one_epoch,
)


@dataclass
class TrainResult:
    model_version_id: int | None
    model: object
    metrics: dict
    history: list
    step_losses: list = field(default_factory=list)
    seconds: float = 0.0


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
    model_options: dict | None = None,
    amp: bool = True,
) -> TrainResult:
    """Train one model of ``kind`` on the database's reference photos and evaluate it on held-out
    people. With ``register`` the run is a ModelVersion row (created now, updated per epoch) and
    its weights go to the store; ``progress(fraction, message)`` is called as it goes.
    ``run_id`` continues an existing ``running`` row (a job a worker claimed). ``amp``: mixed
    precision where it pays (CUDA)."""
    kind_recipe = recipe(kind)
    d = kind_recipe.defaults
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
    amp = amp and dev.type == "cuda"
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
    model_config = {**kind_recipe.model_config({"max_side": max_side, "arch": arch, "min_size": min_size,
                                                "max_size": max_size}), **(model_options or {})}
    config = {
        "kind": kind, "model": model_config, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "weight_decay": weight_decay, "seed": seed, "val_fraction": val_fraction, "device": str(dev),
        "world_size": world, "amp": amp, "weights": weights, "max_steps": max_steps, "augment": augment,
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
    heartbeat = _Heartbeat(run_id, url) if run_id is not None else None

    try:
        bank = ImageBank(store, max_side)
        bank.load(train_samples + val_samples, lambda i, n: report(0.05 * i / n, f"loading photos {i}/{n}"))

        model = model_class(kind)(model_config, device=dev)
        if weights:
            load_local_weights(model.net, weights)
        dataset = kind_recipe.dataset(train_samples, bank, model_config, augment, seed + rank)
        net = model.net
        if world > 1:
            net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[local] if dev.type == "cuda" else None)
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=True, seed=seed) if world > 1 else None
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler, collate_fn=kind_recipe.collate,
            num_workers=workers, drop_last=kind_recipe.drop_last and len(dataset) > batch_size,
        )
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = kind_recipe.optimizer(params, lr, weight_decay)
        steps_per_epoch = len(loader)
        total_steps = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, kind_recipe.warmup_steps(total_steps)))
        eval_every = eval_every if eval_every is not None else kind_recipe.eval_every

        shares = survey_type_shares(url) or [max(1, c) for c in type_counts(train_samples).values()]
        history: list[dict] = []
        step_losses: list[float] = []
        step = 0
        last_write = [0.0]

        def on_step(step: int, loss: float, logger: MetricLogger) -> None:
            step_losses.append(loss)
            if time.time() - last_write[0] > 2.0:
                fraction = 0.05 + 0.85 * step / max(1, total_steps)
                report(fraction, f"epoch {epoch + 1}/{epochs}, loss {logger.meters['loss'].median:.3f}")
                if run_id is not None:
                    registry.update_run(run_id, url=url, progress=fraction,
                                        message=f"epoch {epoch + 1}/{epochs}, step {step}/{total_steps}")
                last_write[0] = time.time()

        for epoch in range(epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            epoch_start = time.time()
            logger, step = train_one_epoch(net, kind_recipe, model_config, optimizer, scheduler, loader, dev,
                                           f"{kind} epoch {epoch + 1}/{epochs}", step=step, max_steps=max_steps,
                                           on_step=on_step, quiet=quiet or not main_process, amp=amp)
            entry = {"epoch": epoch + 1, "seconds": round(time.time() - epoch_start, 2), "steps": step}
            entry.update({k: round(reduce_mean(v, world), 6) for k, v in logger.averages().items()})
            if main_process and eval_every and (epoch + 1) % eval_every == 0:
                entry.update(quick_val(model, val_samples, bank, train_samples, shares))
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
            report(0.9, "calibrating the type bands to the survey's shares")
            model.config["type_thresholds"] = list(calibrate(model, train_samples, bank, shares))
            report(0.92, "evaluating on held-out people")
            if run_id is not None:
                registry.update_run(run_id, url=url, progress=0.92, message="evaluating on held-out people")
            metrics = evaluate(model, val_samples, bank, snapshot.synthetic_labels)
            model.config["type_precision"] = list(metrics["type_precision"].values())  # in TYPES order
            metrics["train_seconds"] = round(time.time() - started, 1)
            metrics["final_loss"] = history[-1].get("loss") if history else None
            if run_id is not None:
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
    finally:
        if heartbeat is not None:
            heartbeat.stop()


class _Heartbeat:
    """Touch the run's row every ``seconds`` while it trains, through long steps and evaluations
    too, so only a run whose process is gone goes stale (registry.fail_stale_runs)."""

    def __init__(self, run_id: int, url: str | None, seconds: float = 10.0):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(run_id, url, seconds), name=f"heartbeat-{run_id}",
                                        daemon=True)
        self._thread.start()

    def _beat(self, run_id: int, url: str | None, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                registry.update_run(run_id, url=url)
            except Exception as exc:  # a database hiccup must not stop the training
                print(f"heartbeat of run {run_id} failed: {exc}", file=sys.stderr)

    def stop(self) -> None:
        self._stop.set()


_serve_lock = threading.Lock()


def ensure_served_model(progress: Callable[[float, str], None] | None = None, url: str | None = None,
                        store=None, epochs: int | None = None) -> int:
    """Make sure a model is promoted: train the head on the current data (the sample project on
    a fresh install) and promote it when none is. Returns the served model's id."""
    with _serve_lock:
        current = registry.promoted_id(url)
        if current is not None:
            if progress:
                progress(1.0, f"model {current} is served")
            return current
        result = train(kind="head", epochs=epochs, device="auto", url=url, store=store,
                       progress=progress, quiet=True)
        registry.promote(result.model_version_id, url=url)
        if progress:
            progress(1.0, f"model {result.model_version_id} trained and promoted")
        return result.model_version_id


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a facetype type model.", add_help=True)
    p.add_argument("--kind", default="head", choices=sorted(KINDS))
    p.add_argument("--epochs", type=int, default=None, help="default: 15 (head), 20 (detector)")
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
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on CUDA")
    p.add_argument("--queue", action="store_true",
                   help="only queue the run, for a worker (python -m models.worker) to train")
    p.add_argument("--run-id", type=int, default=None, help=argparse.SUPPRESS)  # a worker's claimed run
    return p


#: The settings ``--queue`` passes on to the job (models.jobs.OPTIONS).
_QUEUED_SETTINGS = ("epochs", "batch_size", "lr", "weight_decay", "arch", "max_side", "min_size", "max_size",
                    "max_steps", "eval_every", "val_fraction", "seed", "augment")


def queue_run(args) -> int:
    import getpass

    from app.core.auth import Account
    from models import jobs

    if args.promote or not args.register or args.weights:
        raise SystemExit("--queue takes training settings only: promote on the Models page; no --no-register "
                         "or --weights (a local file of this machine)")
    # Whoever runs the CLI holds the database credentials; the run is theirs.
    account = Account(f"cli:{getpass.getuser()}", "lead", "")
    run_id = jobs.enqueue(account, args.kind, **{k: getattr(args, k) for k in _QUEUED_SETTINGS})
    print(f"run {run_id} ({args.kind}) queued; a worker (python -m models.worker) will train it")
    return run_id


def run_claimed(run_id: int, device: str = "auto") -> TrainResult:
    """Train a run a worker claimed, with the settings its job asked for (``python -m models.train
    --run-id N``, started by the worker, under torchrun where it has GPUs)."""
    from models.worker import exit_with_worker

    exit_with_worker()
    row = registry.get_run(run_id)
    if row is None or row.status != RunStatus.RUNNING:
        raise SystemExit(f"run {run_id} is not a claimed, running job")
    job = row.job or {"kind": row.kind, "options": {}}
    return train(kind=job["kind"], device=device, run_id=run_id, quiet=True, **job.get("options", {}))


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.queue:
        queue_run(args)
        return 0
    if args.run_id is not None:
        result = run_claimed(args.run_id, args.device)
        if dist.is_initialized():
            dist.destroy_process_group()
        return 0
    result = train(
        kind=args.kind, epochs=args.epochs, device=args.device, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, arch=args.arch, weights=args.weights, max_side=args.max_side,
        min_size=args.min_size, max_size=args.max_size, max_steps=args.max_steps, eval_every=args.eval_every,
        val_fraction=args.val_fraction, seed=args.seed, workers=args.workers, augment=args.augment,
        register=args.register, promote=args.promote, amp=args.amp,
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
