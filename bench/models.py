"""Benchmark the type models on this machine (run by hand):

    python -m bench.models                 # sample project: head training, detector steps, inference
    python -m bench.models --detector-steps 10 --arch fasterrcnn_mobilenet_v3_large_fpn

Loads the sample project into a temporary database and store (nothing of the app's is
touched), then prints a table: head training time on the sample (target ≤ 3 min on a 2-core
CPU), detector seconds per training step at batch 2, inference p50/p90 of each kind, and one head
training step with a CPU burner beside it, torch's OpenMP threads spinning while they wait
(``OMP_WAIT_POLICY=ACTIVE``) vs sleeping (``PASSIVE``, what ``models`` sets), in fresh processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Milliseconds per head training step (batch 16, random crops), timed for ``seconds``.
STEP_TIMER = """
import time, torch
from models.kinds.head import HeadNet, head_loss
net = HeadNet()
optimizer = torch.optim.AdamW(net.parameters(), 3e-3)
crops, positions = torch.rand(3, 16, 3, 32, 32) - 0.5, torch.rand(16) * 4
def step():
    loss = sum(head_loss(net, crops, positions, sigma=0.8, score_weight=1.0).values())
    optimizer.zero_grad(); loss.backward(); optimizer.step()
for _ in range(3):
    step()
start, steps = time.perf_counter(), 0
while time.perf_counter() - start < {seconds}:
    step(); steps += 1
print(1000 * (time.perf_counter() - start) / steps, torch.get_num_threads())
"""


def busy_training_step_ms(policy: str, seconds: float = 8.0) -> tuple[float, int]:
    """(ms per head training step, torch threads) in a fresh process with ``OMP_WAIT_POLICY=policy``,
    a CPU burner busy beside it."""
    from bench.classify import cpu_burner

    with cpu_burner():
        out = subprocess.run([sys.executable, "-c", STEP_TIMER.format(seconds=seconds)], check=True, text=True,
                             capture_output=True, env={**os.environ, "OMP_WAIT_POLICY": policy}).stdout.split()
    return float(out[0]), int(out[1])


def _percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=None, help="head epochs (default: the training default)")
    p.add_argument("--detector-steps", type=int, default=6)
    p.add_argument("--arch", default="fasterrcnn_mobilenet_v3_large_320_fpn")
    p.add_argument("--inference-photos", type=int, default=20)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    import torch

    from app.core.db import migrate
    from app.services.sample import load_sample_project
    from app.core.storage import LocalStore
    from models.kinds.detector import DetectionDataset, collate_detection as collate
    from models.training.data import ImageBank, load_samples, split_by_person
    from models.kinds.detector import DetectorModel
    from models.training.engine import gate_stand_in
    from models.training.train import train
    from models.serving import classify

    rows = []
    for pair in range(2):  # alternated: this machine's speed drifts within minutes
        for policy in ("ACTIVE", "PASSIVE"):
            ms, threads = busy_training_step_ms(policy)
            rows.append((f"head training step, CPU burner beside, {threads} threads waiting "
                         f"{'spinning' if policy == 'ACTIVE' else 'asleep'} (OMP_WAIT_POLICY={policy}), pair {pair + 1}",
                         f"{ms:.0f} ms"))
    tmp = Path(tempfile.mkdtemp(prefix="facetype-bench-"))
    url = f"sqlite:///{tmp}/bench.db"
    migrate(url)
    store = LocalStore(tmp / "store")
    store.ping()
    t0 = time.perf_counter()
    report = load_sample_project(url=url, store=store)
    rows.append((f"load sample project (gate on {sum(report.photos.values())} photos)", f"{time.perf_counter() - t0:.1f} s"))
    snapshot = load_samples(url)
    rows.append(("usable photos / people", f"{len(snapshot.samples)} / {len({s.person_id for s in snapshot.samples})}"))

    # head: a full default training run on the sample, evaluation included
    t0 = time.perf_counter()
    result = train(kind="head", epochs=args.epochs, device=args.device, url=url, store=store, quiet=True)
    head_s = time.perf_counter() - t0
    m = result.metrics
    rows.append((f"head training on the sample ({len(result.history)} epochs, incl. eval)",
                 f"{head_s:.1f} s ({'OK' if head_s <= 180 else 'OVER'} the 3 min target)"))
    rows.append(("head held-out type accuracy / chance",
                 f"{m['type_accuracy']:.3f} / {m['chance_accuracy']:.3f}"
                 + ("  (synthetic labels)" if m.get("synthetic_labels") else "")))

    # detector: seconds per training step at batch 2
    train_s, _ = split_by_person(snapshot.samples, 0.2, 0)
    bank = ImageBank(store, 640).load(train_s)
    det = DetectorModel({"arch": args.arch}, device=args.device)
    ds = DetectionDataset(train_s, bank, train=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=True, collate_fn=collate)
    params = [q for q in det.net.parameters() if q.requires_grad]
    opt = torch.optim.SGD(params, lr=0.005, momentum=0.9)
    det.net.train()
    times = []
    for i, (images, targets) in enumerate(loader):
        t0 = time.perf_counter()
        loss = sum(det.net(list(images), list(targets)).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i > 0:  # the first step warms up
            times.append(time.perf_counter() - t0)
        if len(times) >= args.detector_steps:
            break
    rows.append((f"detector train step, batch 2 ({args.arch}, {args.device})",
                 f"{statistics.median(times):.2f} s/step (median of {len(times)})"))

    # inference p50/p90 of each kind (model only; the gate is not included)
    photos = snapshot.samples[: args.inference_photos]
    for name, model in (("head", result.model), ("detector (untrained)", det)):
        model.net.eval()
        lat = []
        for s in photos:
            image, _ = bank.get(s)
            _, landmarks = bank.get(s, landmarks=True)
            gate = gate_stand_in(landmarks, image)
            t0 = time.perf_counter()
            classify(image, gate, model)
            lat.append(time.perf_counter() - t0)
        lat = lat[1:] or lat
        rows.append((f"{name} inference p50 / p90 ({len(lat)} photos)",
                     f"{1000 * statistics.median(lat):.1f} / {1000 * _percentile(lat, 0.9):.1f} ms"))

    width = max(len(k) for k, _ in rows)
    print(f"\nfacetype model benchmark — torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {args.device}, {os.cpu_count()} cores, load average at the end "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
