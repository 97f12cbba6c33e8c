"""Command line for the photo cascade.

    python -m models.cascade gate PHOTO... [--json]

``gate`` prints one line per photo; with ``--json`` each line is the object of
:meth:`models.gate.GateResult.to_json`. A bad file is a refused line, never a crash; the exit code
is 0 when every file was processed. Add a subcommand with a ``add_<name>_parser`` and a
``run_<name>`` function, registered in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.gate import GateResult, get_face_gate, refusal


def add_gate_parser(subparsers) -> None:
    parser = subparsers.add_parser("gate", help="check that photos show one usable face; print regions")
    parser.add_argument("photos", nargs="+", metavar="PHOTO")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(run=run_gate)


def run_gate(args) -> int:
    gate = get_face_gate()
    for photo in args.photos:
        try:
            data = Path(photo).read_bytes()
        except OSError:
            result = refusal("unreadable")
        else:
            result = gate.check_bytes(data)
        print(json.dumps(result.to_json(photo)) if args.json else format_gate_line(photo, result), flush=True)
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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
