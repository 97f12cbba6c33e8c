"""The type-model kinds, each with ``predict`` for serving and a training :class:`~models.kinds.base.Recipe`."""

from __future__ import annotations

from models.kinds import detector, head
from models.kinds.base import Recipe, TypeModel

KINDS = {"head": head, "detector": detector}
MODEL_CLASSES = {"head": head.HeadModel, "detector": detector.DetectorModel}


def _known(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}: {' or '.join(KINDS)}")
    return kind


def model_class(kind: str) -> type[TypeModel]:
    return MODEL_CLASSES[_known(kind)]


def recipe(kind: str) -> Recipe:
    return KINDS[_known(kind)].RECIPE
