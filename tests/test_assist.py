"""Model-assisted labeling (labeling/assist.py): the served detector's boxes per photo, the
uncertainty and disagreement numbers, stored once per photo version and model, the queue orders,
the worker's trigger and the Labeling page's order option and "Use the model's boxes"."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlmodel import select

from app.core.db import BoxSuggestion, ModelVersion, Photo, migrate, session_scope
from app.core.storage import LocalStore, get_store
from app.core.vocabulary import REGIONS
from labeling import annotations as ann
from labeling import assist, queue
from models.kinds.base import RegionPrediction
from tests.test_annotations import AUTO, add_photo

SURE = [0.9, 0.025, 0.025, 0.025, 0.025]


def region(box, score, probs=SURE) -> RegionPrediction:
    return RegionPrediction(box=list(box), probs=list(probs), source="model", score=score)


class ScriptedDetector:
    """Stands in for the served detector with known answers (one per call, in call order); the
    real kinds' ``region_boxes`` are tested below."""

    kind = "detector"
    places_boxes = True
    config = {"max_side": 320}  # the 640 px test photos are decoded at half size

    def __init__(self, model_version_id: int, answers: list[dict]):
        self.model_version_id = model_version_id
        self.answers = list(answers)
        self.image_shapes: list[tuple] = []

    def region_boxes(self, image):
        self.image_shapes.append(image.shape)
        return self.answers.pop(0)


def half(box):
    return [v / 2 for v in box]


def shifted(box, dx):
    return [box[0] + dx, box[1], box[2] + dx, box[3]]


# ----------------------------------------------------------------------------- the numbers


def test_uncertainty_is_the_least_sure_regions_doubt():
    regions = {"face": {"box": [0, 0, 1, 1], "score": 0.9, "probs": [0.6, 0.1, 0.1, 0.1, 0.1]},
               "tzone": {"box": [0, 0, 1, 1], "score": 0.8, "probs": [0.5, 0.2, 0.1, 0.1, 0.1]},
               "jaw": {"box": [0, 0, 1, 1], "score": 0.95, "probs": [0.9, 0.1, 0, 0, 0]}}
    assert assist.uncertainty(regions) == pytest.approx(1 - 0.8 * 0.5)
    del regions["jaw"]  # a region the model did not find: as unsure as it gets
    assert assist.uncertainty(regions) == 1.0


def test_disagreement_is_one_minus_the_mean_iou_over_the_regions():
    current = {"face": [0, 0, 10, 10], "tzone": [0, 0, 10, 10], "jaw": [0, 0, 10, 10]}
    assert assist.disagreement(current, current) == 0.0
    predicted = {"face": [0, 0, 10, 10], "tzone": [5, 0, 15, 10]}  # IoU 1, 1/3, and no jaw (0)
    assert assist.disagreement(predicted, current) == pytest.approx(1 - (1 + 1 / 3 + 0) / 3)
    assert assist.disagreement({}, current) == 1.0


def test_orders_put_the_most_uncertain_or_disagreeing_first_and_unscored_last():
    items = [queue.QueueItem(i, None, None, None, "pending", 1, None, 10, 10) for i in (1, 2, 3, 4)]
    rows = {1: BoxSuggestion(photo_id=1, boxes_version=1, model_version_id=9, uncertainty=0.2, disagreement=0.9),
            2: BoxSuggestion(photo_id=2, boxes_version=1, model_version_id=9, uncertainty=0.7, disagreement=0.1),
            4: BoxSuggestion(photo_id=4, boxes_version=1, model_version_id=9, uncertainty=0.7, disagreement=0.5)}
    ids = lambda order: [q.photo_id for q in assist.order_queue(items, rows, order)]  # noqa: E731
    assert ids("queue") == [1, 2, 3, 4]
    assert ids("uncertainty") == [2, 4, 1, 3]  # a tie keeps the queue's order; 3 has no prediction yet
    assert ids("disagreement") == [1, 4, 2, 3]
    with pytest.raises(ValueError, match="unknown order"):
        assist.order_queue(items, rows, "random")


# ----------------------------------------------------------------------------- the kinds


def test_the_detector_places_boxes_and_the_head_says_it_places_none():
    import torch

    from models.kinds.detector import DetectorModel
    from models.kinds.head import HeadModel
    from tests.test_dataset import BASE_BOXES, make_image

    image = make_image(BASE_BOXES, 0)
    head = HeadModel()
    assert head.places_boxes is False and head.region_boxes(image) == {}
    torch.manual_seed(0)
    detector = DetectorModel({"min_size": 96, "max_size": 96})  # untrained: low scores, but real detections
    boxes = detector.region_boxes(image)
    assert detector.places_boxes is True and boxes and set(boxes) <= set(REGIONS)
    for prediction in boxes.values():
        assert prediction.source == "model" and 0 < prediction.score <= 1
        assert prediction.probs == pytest.approx(prediction.probs) and sum(prediction.probs) == pytest.approx(1)
        x0, y0, x1, y1 = prediction.box
        assert 0 <= x0 <= x1 <= 96 and 0 <= y0 <= y1 <= 96


# ----------------------------------------------------------------------------- stored once, reused


def _jpeg(size=(640, 640)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 170, 150)).save(out, format="JPEG")
    return out.getvalue()


def _project(url: str, store, n: int = 3) -> tuple[list[int], int]:
    """``n`` pending 640 px photos with AUTO boxes (stored JPEGs) and a promoted detector row."""
    migrate(url)
    with session_scope(url) as s:
        ids = [add_photo(s, f"p{i:02d}", (0.9, 0.9, 0.9)) for i in range(n)]
        for pid in ids:
            store.put(s.get(Photo, pid).object_key, _jpeg(), "image/jpeg")
        model = ModelVersion(kind="detector", status="done", promoted=True)
        s.add(model)
        s.flush()
        return ids, int(model.id)


ANSWERS = [  # in the model's 320 px image: the AUTO boxes exactly; shifted; without a jaw and unsure
    {r: region(half(AUTO[r]), 0.95) for r in REGIONS},
    {r: region(shifted(half(AUTO[r]), 60), 0.9) for r in REGIONS},
    {"face": region(half(AUTO["face"]), 0.4), "tzone": region(half(AUTO["tzone"]), 0.5)},
]


def test_suggestions_are_stored_per_photo_version_and_order_the_queue(tmp_path):
    url, store = f"sqlite:///{tmp_path}/t.db", LocalStore(tmp_path / "store")
    (a, b, c), model_id = _project(url, store)
    model = ScriptedDetector(model_id, ANSWERS)
    assert assist.suggest_for_queue(model, url=url, store=store) == {"computed": 3, "already": 0, "failed": 0}
    assert model.image_shapes == [(320, 320, 3)] * 3
    assert assist.suggest_for_queue(model, url=url, store=store) == {"computed": 0, "already": 3, "failed": 0}

    with session_scope(url) as s:
        rows = assist.stored_suggestions(s, [a, b, c], model_id)
        assert rows[a].regions["face"]["box"] == list(AUTO["face"])  # back in the photo's own pixels
        assert rows[a].disagreement == 0.0 and rows[a].uncertainty == pytest.approx(1 - 0.95 * 0.9)
        assert rows[b].disagreement > 0.3 and rows[b].uncertainty == pytest.approx(1 - 0.9 * 0.9)
        assert "jaw" not in rows[c].regions and rows[c].uncertainty == 1.0
        items = queue.review_queue(s)
    assert [q.photo_id for q in items] == [a, b, c]
    assert [q.photo_id for q in assist.order_queue(items, rows, "uncertainty")] == [c, b, a]
    # b's boxes are 120 px off (IoU 0.54, 0.25, 0.43); c lacks its jaw (IoU 1, 1, 0); a's are the same
    assert (rows[b].disagreement, rows[c].disagreement) == pytest.approx((1 - (280 / 520 + 0.25 + 180 / 420) / 3, 1 / 3))
    assert [q.photo_id for q in assist.order_queue(items, rows, "disagreement")] == [b, c, a]

    # Saving b's boxes as the model had them: the new version reuses the prediction (no model run)
    # and agrees with it.
    with session_scope(url) as s:
        model_boxes = {r: tuple(v["box"]) for r, v in rows[b].regions.items()}
        assert isinstance(ann.save_boxes(s, b, 1, model_boxes, "ann", "save"), ann.SaveResult)
    with session_scope(url) as s:
        assert b not in assist.stored_suggestions(s, [b], model_id)  # version 2 has none yet
        row = assist.suggestion_for(s, s.get(Photo, b), model)
        assert (row.boxes_version, row.disagreement) == (2, 0.0)
    assert model.answers == []  # would have raised IndexError had the model run again
    with session_scope(url) as s:
        assert len(s.exec(select(BoxSuggestion).where(BoxSuggestion.photo_id == b)).all()) == 2


def test_nothing_to_offer_without_a_detector(tmp_path):
    url = f"sqlite:///{tmp_path}/t.db"
    migrate(url)
    with session_scope(url) as s:
        state = assist.assist_state(s)
        assert not state.available and "No model is served" in state.reason
        s.add(ModelVersion(kind="head", status="done", promoted=True))
    with session_scope(url) as s:
        state = assist.assist_state(s)
        assert not state.available and state.kind == "head" and "places no boxes" in state.reason

    class Head:
        places_boxes = False
        model_version_id = 1

    assert assist.suggest_for_queue(Head(), url=url) == {"computed": 0, "already": 0, "failed": 0}


# ----------------------------------------------------------------------------- the worker's trigger


def test_the_worker_assists_after_a_detector_promotion_and_then_every_so_often(tmp_path):
    from models import registry
    from models.worker import Worker

    url = f"sqlite:///{tmp_path}/t.db"
    migrate(url)
    worker = Worker(url=url, assist_every=600)
    assert worker.assist_due(now=0) is None  # nothing served
    head = registry.create_run("head", {}, url=url, status="done")
    registry.update_run(head, url=url, promoted=True)
    assert worker.assist_due(now=0) is None  # a head places no boxes
    first = registry.create_run("detector", {}, url=url, status="done")
    with session_scope(url) as s:
        for row in s.exec(select(ModelVersion)):
            row.promoted = row.id == first
            s.add(row)
    assert worker.assist_due(now=0) == first
    worker.assisted = (first, 0.0)
    assert worker.assist_due(now=599) is None
    assert worker.assist_due(now=600) == first  # photos imported since get theirs
    second = registry.create_run("detector", {}, url=url, status="done")
    with session_scope(url) as s:
        for row in s.exec(select(ModelVersion)):
            row.promoted = row.id == second
            s.add(row)
    assert worker.assist_due(now=1) == second  # a promotion: at once
    assert Worker(url=url, assist_module=None).assist_due(now=0) is None  # --no-assist


# ----------------------------------------------------------------------------- the Labeling page


def _photo_options(at) -> list[int]:
    box = next(s for s in at.selectbox if s.label == "Photo")
    return [int(o.split()[1]) for o in box.options]


def test_page_orders_the_queue_by_the_model_and_puts_its_boxes_on_the_canvas(app_env):
    from streamlit.testing.v1 import AppTest

    from labeling.canvas import drawing_to_boxes, fit_canvas

    (a, b, c), model_id = _project(app_env.resolved_database_url, get_store())
    assist.suggest_for_queue(ScriptedDetector(model_id, ANSWERS))
    at = AppTest.from_file("pages/labeling.py", default_timeout=60)
    at.session_state["annotator"] = "tester"
    at.query_params["photo"] = str(b)
    at.run()
    assert not at.exception, at.exception
    order = at.radio(key="labeling-order")
    assert not order.disabled
    assert _photo_options(at) == [a, b, c]
    order.set_value("uncertainty").run()
    assert _photo_options(at) == [c, b, a]
    assert any("least sure photos first" in m.value for m in at.markdown)
    at.radio(key="labeling-order").set_value("disagreement").run()
    assert _photo_options(at) == [b, c, a]  # a's model boxes are its boxes
    assert any("Model run" in cap.value and "disagreement 0.59" in cap.value for cap in at.caption), [c.value for c in at.caption]

    at.button(key=f"labeling-use-model-{b}").click().run()
    assert not at.exception, at.exception
    expected = {r: shifted(list(AUTO[r]), 120) for r in REGIONS}  # b's model boxes, 120 px to the right
    assert {r: list(v) for r, v in at.session_state["edited"][(b, 1)].items()} == expected
    key = next(k for k in at.session_state["initial_drawing"] if k.startswith(f"canvas-{b}-1-1-"))
    fit = fit_canvas(640, 640, 800, 600)
    drawn = {box.label: list(box.box) for box in drawing_to_boxes(at.session_state["initial_drawing"][key], fit)}
    assert set(drawn) == set(REGIONS)
    for r in REGIONS:
        assert drawn[r] == pytest.approx(expected[r])
    regions = at.table[0].value  # "changed" right after the region, where a phone still shows it
    assert regions.columns[0] == "changed" and list(regions["changed"]) == ["yes"] * len(REGIONS)


def test_page_with_a_head_served_shows_the_order_option_disabled_with_the_reason(app_env):
    from streamlit.testing.v1 import AppTest

    migrate()
    with session_scope() as s:
        add_photo(s, "p01")
        s.add(ModelVersion(kind="head", status="done", promoted=True))
    at = AppTest.from_file("pages/labeling.py", default_timeout=60)
    at.session_state["annotator"] = "tester"
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="labeling-order").disabled
    assert any("is a head" in cap.value and "places no boxes" in cap.value for cap in at.caption)
    assert not any(b.key and b.key.startswith("labeling-use-model") for b in at.button)
    assert not any("Model run" in cap.value for cap in at.caption)


def test_a_worker_stores_a_promoted_detectors_boxes_for_the_queue(tmp_path):
    """End to end on a real (untrained, small) detector: promoted, then a worker with nothing to
    train runs `python -m labeling.assist`, which stores its boxes for every queued photo."""
    import subprocess
    import sys

    import torch

    from models import registry
    from models.kinds.base import save_checkpoint
    from models.kinds.detector import DetectorModel
    from tests.test_dataset import build_fixture
    from tests.test_jobs import PROJECT_ROOT, worker_env

    url, store = build_fixture(tmp_path, n_people=3, photos_per_person=1)
    torch.manual_seed(0)
    run_id = registry.create_run("detector", {}, url=url)
    registry.finish_run(run_id, save_checkpoint(DetectorModel({"min_size": 96, "max_size": 96})), {}, url=url,
                        store=store)
    registry.promote(run_id, url=url)
    done = subprocess.run([sys.executable, "-m", "models.worker", "--once"], cwd=PROJECT_ROOT,
                          env=worker_env(url, tmp_path / "store"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"model-assisted boxes for detector {run_id} stored" in done.stderr, done.stderr[-3000:]
    with session_scope(url) as s:
        rows = s.exec(select(BoxSuggestion)).all()
        assert len(rows) == 3 and {r.model_version_id for r in rows} == {run_id}
        assert all(0 <= r.uncertainty <= 1 and 0 <= r.disagreement <= 1 and r.boxes_version == 1 for r in rows)


def test_the_models_boxes_are_painted_dashed_on_the_background_at_canvas_scale():
    import numpy as np

    from labeling.canvas import region_color
    from labeling.previews import _jpeg, with_dashed_boxes

    background = _jpeg(Image.new("RGB", (400, 300), (128, 128, 128)))
    painted = np.asarray(Image.open(io.BytesIO(with_dashed_boxes(background, {"tzone": [100, 100, 300, 200]}, 0.5, 0.5))))
    color = np.array(Image.new("RGB", (1, 1), region_color("tzone")).getpixel((0, 0)))
    top_edge = np.abs(painted[50, 50:150].astype(int) - color).max(axis=-1) < 60  # the box at half scale
    assert 0.3 < top_edge.mean() < 0.8  # dashes and gaps, not a solid line
    assert np.abs(painted[75, 60:140].astype(int) - 128).max() < 20  # the inside is left as it was
    assert np.abs(painted[20, 20:380].astype(int) - 128).max() < 20  # nothing outside the box
