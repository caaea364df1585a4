"""Cost-aware selection (`voxpop export --max-ms-per-row X`, as AutoGluon's `infer_limit`): each
candidate's cost per row is measured at export, on validation texts, as ONNX Runtime runs it
(one intra-op thread, one batch of the rows, best of a few repeats) plus the encoding of the
inputs it reads; an ensemble costs the encoding of the union of its members' inputs (encoded
once, shared) plus the sum of its members' graphs. Selection then adds only members that keep
that sum within the budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from voxpop.data.errors import VoxpopError

COST_ROWS = 512  # validation rows timed (fewer when validation is smaller)
REPEATS = 3  # best of: the shared machine's noise only ever adds time


@dataclass
class Costs:
    """Measured milliseconds per row: `graph_ms` per candidate name, `inputs` each candidate's
    model inputs, `encode_ms` per set of inputs (measured on first use); `rows` timed."""

    graph_ms: dict[str, float]
    inputs: dict[str, frozenset[str]]
    rows: int
    _encode: object = None  # (frozenset of inputs) -> ms per row, measured on first use
    _encoded: dict[frozenset, float] = field(default_factory=dict)

    def encode_ms(self, inputs: frozenset[str]) -> float:
        if inputs not in self._encoded:
            self._encoded[inputs] = self._encode(inputs)
        return self._encoded[inputs]

    def of(self, names) -> float:
        """ms per row of an ensemble of the candidates `names`: shared encoding + each graph."""
        names = sorted(set(names))  # one sum order: the same set always costs the same float
        inputs = frozenset().union(*(self.inputs[name] for name in names))
        return self.encode_ms(inputs) + sum(self.graph_ms[name] for name in names)


@dataclass(frozen=True)
class Budget:
    """`--max-ms-per-row`: the limit and the measured costs it is checked against."""

    max_ms_per_row: float
    costs: Costs

    def fits(self, names) -> bool:
        return self.costs.of(names) <= self.max_ms_per_row

    def check_any_fits(self, names: list[str]) -> None:
        """VoxpopError naming the cheapest candidate when not one fits alone."""
        if any(self.fits([name]) for name in names):
            return
        cheapest = min(names, key=lambda name: self.costs.of([name]))
        raise VoxpopError(
            f"--max-ms-per-row {self.max_ms_per_row:g}: no candidate fits; the cheapest, "
            f"{cheapest}, costs {self.costs.of([cheapest]):.3f} ms per row (measured on "
            f"{self.costs.rows} validation rows, one thread, encoding included)"
        )


def measure_costs(
    models: dict, preprocessor, texts: list[str], features: np.ndarray | None
) -> Costs:
    """Costs of the ONNX `models` (candidate name -> ModelProto) on `texts` (and their user
    feature columns)."""
    import onnxruntime as ort

    from voxpop.ensemble.sessions import SENTENCE_KEY, run_by_length

    texts, features = texts[:COST_ROWS], None if features is None else features[:COST_ROWS]
    rows = len(texts)
    inputs = {name: frozenset(i.name for i in model.graph.input) for name, model in models.items()}
    encoded = preprocessor.encode(
        texts, features, inputs=sorted(frozenset().union(*inputs.values()))
    )
    graph_ms = {}
    for name, model in models.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        feed = {i.name: encoded[i.name] for i in session.get_inputs()}
        # a sentence encoder's graph in the runs of rows the ensemble makes; others in one run
        key = SENTENCE_KEY if SENTENCE_KEY in feed else None
        run_by_length(session, feed, key=key)  # the first run allocates; not what a row costs
        graph_ms[name] = (
            _best_ms(
                lambda session=session, feed=feed, key=key: run_by_length(session, feed, key=key)
            )
            / rows
        )

    def encode_ms(wanted: frozenset[str]) -> float:
        return _best_ms(lambda: preprocessor.encode(texts, features, inputs=sorted(wanted))) / rows

    return Costs(graph_ms=graph_ms, inputs=inputs, rows=rows, _encode=encode_ms)


def _best_ms(work) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best * 1000
