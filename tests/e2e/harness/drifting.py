"""Traffic drawn from the model's training data, for drift scenarios: IrisRows sends rows of the
iris data set (the distribution the reference profile was built from), with a feature shifted on
demand, each request with an id; FeedbackSender posts the true label of every answered request to
the runtime's feedback endpoint, a share of them flipped on demand."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from tests.e2e.harness.loadgen import LoadGenerator, Request
from tests.support import testmodels

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


class IrisRows:
    """A load-generator payload (body(inputs, request)): one iris row per request, id `r<seq>`.

    `shift(feature, sigmas)` adds that many of the feature's standard deviations to it, in every
    request or, with `only`, in the requests it accepts (a segment's own traffic)."""

    def __init__(self, seed: int = 7) -> None:
        self.x, self.y = testmodels.iris()
        self.std = self.x.std(axis=0)
        self._offset = np.zeros(self.x.shape[1])
        self._only: Callable[[Request], bool] | None = None
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._labels: dict[str, int] = {}

    def shift(self, feature: str, sigmas: float, only: Callable[[Request], bool] | None = None) -> None:
        with self._lock:
            self._offset = np.zeros(self.x.shape[1])
            self._offset[FEATURES.index(feature)] = sigmas * self.std[FEATURES.index(feature)]
            self._only = only

    def reset(self) -> None:
        with self._lock:
            self._offset = np.zeros(self.x.shape[1])
            self._only = None

    def body(self, inputs: list[dict[str, Any]], request: Request) -> dict[str, Any]:
        with self._lock:
            row = self._random.randrange(len(self.x))
            shifted = self._only is None or self._only(request)
            values = self.x[row] + (self._offset if shifted else 0.0)
            request_id = f"r{request.seq}"
            self._labels[request_id] = int(self.y[row])
            if len(self._labels) > 200_000:  # bounded: the oldest ids are long answered
                for old in list(self._labels)[:100_000]:
                    del self._labels[old]
        name = inputs[0].get("name", "input-0") if inputs else "input-0"
        return {"id": request_id, "inputs": [{"name": name, "shape": [1, len(values)], "datatype": "FP64",
                                              "data": [round(float(v), 3) for v in values]}]}

    def label(self, request: Request) -> int | None:
        with self._lock:
            return self._labels.get(f"r{request.seq}")


class FeedbackSender:
    """on_answer hook: posts {"id", "truth"} for every request a pod answered with 200; `flip(ratio)`
    sends a wrong label (another class) for that share of them. Answers are counted by status."""

    def __init__(self, loadgen: LoadGenerator, rows: IrisRows, model: str) -> None:
        self.loadgen = loadgen
        self.rows = rows
        self.path = f"/v2/models/{model}/feedback"
        self.flip_ratio = 0.0
        self.answers: Counter[int] = Counter()
        self._random = random.Random(11)
        self._lock = threading.Lock()

    def flip(self, ratio: float) -> None:
        self.flip_ratio = ratio

    def record(self, request: Request) -> None:
        label = self.rows.label(request)
        if request.outcome != 200 or label is None:
            return
        with self._lock:
            flipped = self._random.random() < self.flip_ratio
        truth = (label + 1) % 3 if flipped else label
        status, _ = self.loadgen.post(self.path, {"id": f"r{request.seq}", "truth": truth})
        with self._lock:
            self.answers[status] += 1
