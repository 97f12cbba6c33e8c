"""Command line for the photo cascade.

    python -m models.cascade gate PHOTO... [--json]
    python -m models.cascade classify PHOTO... [--json] [--model ID]

``gate`` prints one line per photo; with ``--json`` each line is the object of
:meth:`models.gate.GateResult.to_json`. ``classify`` adds the type from the promoted model (or
``--model ID``): ``type``, ``score``, ``confidence``, ``per_region`` and ``model``. A bad file is a refused line, never a crash; the exit code
is 0 when every file was processed. Add a subcommand with a ``add_<name>_parser`` and a
``run_<name>`` function, registered in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from models.gate import GateResult, get_face_gate, refusal
from models.runtime import configure_serving_process
from models.serving import NoServedModel, classify, decode_side, get_served_model, load_model


def add_gate_parser(subparsers) -> None:
    parser = subparsers.add_parser("gate", help="check that photos show one usable face; print regions")
    parser.add_argument("photos", nargs="+", metavar="PHOTO")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(run=run_gate)


def gate_file(gate, photo: str, min_side: int | None = None) -> tuple[GateResult, np.ndarray | None]:
    """The gate's answer for a file, and its upright image when it could be decoded (reduced to
    ``min_side``, see :meth:`models.gate.FaceGate.decode_and_check`)."""
    try:
        data = Path(photo).read_bytes()
    except OSError:
        return refusal("unreadable"), None
    return gate.decode_and_check(data, min_side=min_side)


def run_gate(args) -> int:
    gate = get_face_gate()
    for photo in args.photos:
        result, _ = gate_file(gate, photo)
        print(json.dumps(result.to_json(photo)) if args.json else format_gate_line(photo, result), flush=True)
    return 0


def add_classify_parser(subparsers) -> None:
    parser = subparsers.add_parser("classify", help="gate, regions and type with the promoted model")
    parser.add_argument("photos", nargs="+", metavar="PHOTO")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--model", type=int, default=None, help="model version id (default: the promoted one)")
    parser.set_defaults(run=run_classify)


def classification_json(photo: str, gate_result: GateResult, classification) -> dict:
    line = gate_result.to_json(photo)
    result = classification.result if classification else None
    line.update(
        type=result.type if result else None,
        score=round(result.score, 2) if result else None,
        confidence=round(result.confidence, 3) if result else None,
        per_region={
            region: {"type": entry["type"], "probability": round(entry["probability"], 3), "source": entry["source"]}
            for region, entry in result.per_region.items()
        } if result else None,
        model=classification.model_version_id if classification else None,
    )
    return line


def run_classify(args) -> int:
    try:
        model = load_model(args.model) if args.model is not None else get_served_model()
    except (NoServedModel, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    gate = get_face_gate()
    for photo in args.photos:
        gate_result, image = gate_file(gate, photo, min_side=decode_side(model))
        classification = classify(image, gate_result, model) if gate_result.ok else None
        line = classification_json(photo, gate_result, classification)
        if args.json:
            print(json.dumps(line), flush=True)
        elif classification is None:
            print(format_gate_line(photo, gate_result), flush=True)
        else:
            regions = ", ".join(f"{r} {e['type']} {e['probability']:.2f}" for r, e in line["per_region"].items())
            print(f"{photo}: {line['type']} (score {line['score']}, confidence {line['confidence']}; {regions})")
    return 0


def format_gate_line(photo: str, result: GateResult) -> str:
    if not result.ok:
        return f"{photo}: refused ({result.reason}): {result.message}"
    boxes = "  ".join(f"{name} {[round(v) for v in box.as_list()]}" for name, box in result.regions.items())
    return f"{photo}: ok  {boxes}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models.cascade", description="facetype photo cascade")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_gate_parser(subparsers)
    add_classify_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    configure_serving_process()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
