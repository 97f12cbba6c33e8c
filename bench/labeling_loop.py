"""Do corrections on the Labeling page pay off? ``python -m bench.labeling_loop [--seeds 0 1 2]``

For each split seed, on a fresh copy of the sample project (temporary SQLite + folder store):

1. Damage the boxes of half the training photos the way a weak auto-labeler would: every region
   shifted and scaled by about 25 % of its box, written as a new *automatic* version.
2. Train the default kind (head) → held-out type accuracy A.
3. Correct those photos **through the same save function the Labeling canvas uses**
   (``labeling.annotations.save_boxes`` with ``accept``, as an annotator would), putting the
   landmark boxes back; retrain on the same split → accuracy B.

Prints A, B and B − A per seed, and their mean and spread over seeds. Held-out people are
evaluated at their own (undamaged) landmark boxes, as a visitor's photo would be.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time

from sqlmodel import select


def damaged(boxes: dict, rng: random.Random, amount: float = 0.25) -> dict:
    out = {}
    for region, (x0, y0, x1, y1) in boxes.items():
        w, h = x1 - x0, y1 - y0
        dx, dy = rng.choice((-1, 1)) * amount * w, rng.choice((-1, 1)) * amount * h
        s = 1 + rng.choice((-1, 1)) * amount
        cx, cy = (x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy
        out[region] = [cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2]
    return out


def run_seed(seed: int, epochs: int | None) -> dict:
    workdir = tempfile.mkdtemp(prefix="facetype-loop-")
    os.environ["FACETYPE_VAR_DIR"] = workdir
    from app.core.db import Photo, RegionBox, get_engine, migrate, session_scope
    from app.core.settings import get_settings
    from app.core.storage import get_store
    from app.services.sample import load_sample_project
    from labeling.annotations import save_boxes
    from models.training.data import load_samples, split_by_person
    from models.training.train import train

    get_settings.cache_clear()
    get_engine.cache_clear()
    get_store.cache_clear()
    migrate()
    load_sample_project()
    snapshot = load_samples()
    train_samples, val_samples = split_by_person(snapshot.samples, 0.2, seed)
    rng = random.Random(seed)
    chosen = rng.sample(train_samples, len(train_samples) // 2)
    original = {s.photo_id: s.boxes for s in chosen}
    with session_scope() as session:
        for s in chosen:
            photo = session.get(Photo, s.photo_id)
            photo.boxes_version += 1
            for region, box in damaged(s.boxes, rng).items():
                session.add(RegionBox(photo_id=s.photo_id, version=photo.boxes_version, region=region,
                                      x0=box[0], y0=box[1], x1=box[2], y1=box[3], source="auto", confidence=0.5))
    # the held-out people keep their own landmark boxes; the damaged training photos must not be
    # evaluated, so the split is given explicitly
    damaged_snapshot = load_samples()
    by_id = {s.photo_id: s for s in damaged_snapshot.samples}
    split = ([by_id[s.photo_id] for s in train_samples], [by_id[s.photo_id] for s in val_samples])
    started = time.time()
    before = train(kind="head", epochs=epochs, register=False, quiet=True, seed=seed, split=split, store=get_store())
    with session_scope() as session:
        for photo_id, boxes in original.items():
            version = session.exec(select(Photo.boxes_version).where(Photo.id == photo_id)).one()
            save_boxes(session, photo_id, version, boxes, annotator="bench", decision="accept")
    fixed = {s.photo_id: s for s in load_samples().samples}
    assert all(fixed[p].box_source == "human" for p in original)
    split = ([fixed[s.photo_id] for s in train_samples], [fixed[s.photo_id] for s in val_samples])
    after = train(kind="head", epochs=epochs, register=False, quiet=True, seed=seed, split=split, store=get_store())
    return {"seed": seed, "damaged_photos": len(chosen), "A": before.metrics["type_accuracy"],
            "B": after.metrics["type_accuracy"], "A_spearman": before.metrics["spearman"],
            "B_spearman": after.metrics["spearman"], "seconds": round(time.time() - started)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    rows = []
    print(f"{'seed':>4} {'damaged':>7} {'A':>6} {'B':>6} {'B-A':>6} {'rho A':>6} {'rho B':>6} {'s':>5}")
    for seed in args.seeds:
        r = run_seed(seed, args.epochs)
        rows.append(r)
        print(f"{r['seed']:>4} {r['damaged_photos']:>7} {r['A']:>6.3f} {r['B']:>6.3f} {r['B'] - r['A']:>+6.3f} "
              f"{r['A_spearman']:>6.3f} {r['B_spearman']:>6.3f} {r['seconds']:>5}", flush=True)
    gains = [r["B"] - r["A"] for r in rows]
    spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
    print(f"mean A {statistics.mean(r['A'] for r in rows):.3f}, mean B {statistics.mean(r['B'] for r in rows):.3f}, "
          f"B - A {statistics.mean(gains):+.3f} (sd over seeds {spread:.3f}), {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
