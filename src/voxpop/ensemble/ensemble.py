"""`Ensemble`: a verified bundle's preprocessor and ONNX members, predicting with a vote.

predict = encode (the bundle's Preprocessor) -> forward (ONNX Runtime) -> vote (voting.py).
The fused graph (all members and the weighted soft vote in one session, and the stacker's output
beside it when the bundle has one) runs whenever it computes exactly the vote asked for; otherwise
each member runs in its own session, the sessions side by side with the cores split between them.
`predict_votes` (every vote and every member, for `voxpop evaluate`) reads the members'
probabilities from one run of the fused graph where it outputs them. Loaded with `pipeline=True`,
one of the cores is kept for encoding the next chunk while the sessions run this one
(stream.predict_chunks).

Every session opens from the bundle's verified bytes and is checked before use: its output
`probs` must be one column per label, and on the bundle's check rows it must give the stored
probabilities (a member) or the weighted vote of the stored member probabilities (the fused
graph, and the stacker applied to them for its stack output, and the stored member
probabilities for its member outputs), within CHECK_TOLERANCE. Only the sessions a command opens
are checked, so predict's start-up pays for one check run of CHECK_ROWS texts; `verify_all`
checks every graph.

A graph runs on rows of about one length at a time (sessions.run_outputs_by_length): n-gram
columns past a run's longest row are dropped, and a graph that trims its token padding
(Member.trims_padding) sees short rows together.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voxpop.data import Preprocessor
from voxpop.data.errors import VoxpopError, first_line
from voxpop.ensemble.bundle import MANIFEST, Bundle, open_bundle
from voxpop.ensemble.manifest import STACK_OUTPUT, Manifest, member_output
from voxpop.ensemble.options import DEFAULT_DEVICE
from voxpop.ensemble.sessions import (
    SENTENCE_KEY,
    available_cores,
    check_device,
    length_key,
    open_session,
    run_outputs_by_length,
    session_device,
    split_threads,
)
from voxpop.ensemble.voting import VOTERS, check_weights, stack_probs, vote

# Largest |probability - stored probability| on the check rows. fp32 graphs on a CPU agree with
# export to ~1e-7; a swapped graph or changed weights differ by far more. CUDA's TF32 matmuls
# keep 10 mantissa bits: looser there (not measured here: no GPU). int8 graphs quantize their
# activations per call, and the kernels differ with the thread count: measured 0.0085 between 1
# and 2 threads on an int8 LSTM member (bench_predict's), so int8 bundles get INT8_TOLERANCE.
CHECK_TOLERANCE = {"cpu": 1e-3, "cuda": 2e-2}
INT8_TOLERANCE = 5e-2


@dataclass(frozen=True)
class Prediction:
    """Labels and probabilities for n texts; member_probs is filled when members ran separately."""

    labels: list[str]
    label_ids: np.ndarray  # int64 [n]
    probs: np.ndarray  # float32 [n, C]: vote probabilities (hard voting: vote shares)
    confidence: np.ndarray  # float32 [n]: probs at the predicted label
    member_probs: dict[str, np.ndarray] = field(default_factory=dict)  # id -> float32 [n, C]


class Ensemble:
    """A loaded bundle. Build it with `Ensemble.load(path)`."""

    def __init__(
        self,
        *,
        bundle: Bundle,
        preprocessor,
        device: str,
        threads: int | None,
        fused: bool,
        pipeline: bool = False,
    ):
        self.bundle: Path = bundle.path
        self.manifest: Manifest = bundle.manifest
        self.signer = bundle.signer
        self.preprocessor = preprocessor
        self.labels: list[str] = list(self.manifest.labels)
        self.member_ids: list[str] = self.manifest.member_ids
        self.requested_device = device
        self.threads = threads or available_cores()
        # Pipelined, one thread encodes (a worker of stream.predict_chunks) and the sessions share
        # the others, so that the two never compete for a core. Not with a sentence encoder: its
        # graph takes some 40 times its encoding, so a thread kept for encoding would mostly wait
        # while the graph ran on half the cores (measured, MiniLM + tfidf on 2,000 tweets and 2
        # threads: 220 rows/s pipelined, 375 with both threads on the graph).
        self.pipeline = (
            pipeline
            and self.threads > 1
            and not any(SENTENCE_KEY in member.inputs for member in self.manifest.members)
        )
        self.graph_threads = self.threads - 1 if self.pipeline else self.threads
        self._files = bundle
        self._members = {member.id: member for member in self.manifest.members}
        self._fused_spec = self.manifest.fused if fused else None
        self._fused_session = None
        self._member_sessions: dict[str, object] = {}
        self._trims_padding: dict[int, bool] = {}  # id(session) -> whether its graph trims padding
        self._check_inputs: dict[str, np.ndarray] | None = None
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: str = DEFAULT_DEVICE,
        threads: int | None = None,
        fused: bool = True,
        pipeline: bool = False,
        trust: str | Path | None = None,
    ) -> Ensemble:
        """Verify the bundle at `path` (signature with `trust`, schema, sha256s, paths) and load
        its preprocessor.

        device: auto|cpu|cuda. threads: threads in total (default: all cores).
        fused: use the bundle's fused graph when it computes the vote asked for.
        pipeline: keep one of the threads for encoding beside the sessions (predict_chunks then
        encodes the next chunk while the graph runs this one); no effect with one thread, nor on
        a bundle with a sentence member (its graph gets every thread).
        trust: a PEM public key that must have signed the manifest.
        Sessions open on first use (the fused one, if used, right away), each checked on the
        bundle's check rows.
        """
        check_device(device)
        if threads is not None and threads < 1:
            raise VoxpopError(f"threads must be at least 1, got {threads}")
        bundle = open_bundle(path, trust=trust)
        manifest = bundle.manifest
        preprocessor = Preprocessor.from_json_bytes(
            bundle.read(manifest.preprocess), source=str(bundle.path / manifest.preprocess)
        )
        if list(preprocessor.labels) != list(manifest.labels):
            raise VoxpopError(
                f"{bundle.path}: labels in {manifest.preprocess} differ from {MANIFEST}"
            )
        _check_inputs_made(bundle.path, manifest, preprocessor)
        ensemble = cls(
            bundle=bundle,
            preprocessor=preprocessor,
            device=device,
            threads=threads,
            fused=fused,
            pipeline=pipeline,
        )
        if ensemble._fused_spec:
            ensemble._fused_session = ensemble._open(
                ensemble._fused_spec.file, intra_op_threads=ensemble.graph_threads
            )
        return ensemble

    def verify_all(self) -> int:
        """Open and check every graph of the bundle (each member and the fused graph) on the check
        rows; returns how many were checked. VoxpopError names the first that fails."""
        for member_id in self.member_ids:
            self._member_session(member_id, n_running=len(self.member_ids))
        if self.manifest.fused and self._fused_session is None:
            self._fused_session = self._open(
                self.manifest.fused.file, intra_op_threads=self.graph_threads
            )
        return len(self.member_ids) + (self.manifest.fused is not None)

    @property
    def votings(self) -> list[str]:
        """The voting rules this bundle can run (stack only with a stacker), in VOTERS order."""
        return [rule for rule in VOTERS if rule != "stack" or self.manifest.stacker is not None]

    @property
    def device(self) -> str:
        """The device that really runs the sessions ('cpu' or 'cuda')."""
        session = self._fused_session or next(iter(self._member_sessions.values()), None)
        if session is None:
            session = self._member_session(self.member_ids[0], n_running=len(self.member_ids))
        return session_device(session)

    def encode(
        self,
        texts: Sequence[str],
        features: np.ndarray | None = None,
        *,
        members: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """The model inputs that `members` (default all) take (of "tokens", "features", "grams",
        "gram_weights"), for `texts` and the user's feature columns."""
        chosen = self._choose_members(members)
        needed = list(dict.fromkeys(name for m in chosen for name in self._members[m].inputs))
        return self.preprocessor.encode(list(texts), features, inputs=needed)

    def predict(
        self,
        texts: Sequence[str],
        *,
        features: np.ndarray | None = None,
        voting: str = "soft",
        weights: Sequence[float] | None = None,
        members: Sequence[str] | None = None,
    ) -> Prediction:
        """Predict `texts` with `voting` (soft|hard|weighted) over `members` (default all).

        weights: one per chosen member; default all 1 for soft/hard and the bundle's
        greedy-selection weights for weighted.
        """
        return self.predict_encoded(
            self.encode(texts, features, members=members),
            voting=voting,
            weights=weights,
            members=members,
        )

    def predict_encoded(
        self, inputs: dict[str, np.ndarray], *, voting: str = "soft", weights=None, members=None
    ) -> Prediction:
        """`predict` for inputs already made by `encode`."""
        chosen, weights, fused = self._plan(voting, weights, members)
        if fused:
            output = STACK_OUTPUT if voting == "stack" else "probs"
            probs = self._run(self._fused_session, inputs, output=output)
            return self._prediction(probs, probs.argmax(axis=1))
        member_probs = self._forward_members(chosen, inputs)
        probs, label_ids = vote(
            list(member_probs.values()),
            voting=voting,
            weights=weights,
            stacker=self.manifest.stacker,
        )
        return self._prediction(probs, label_ids, member_probs)

    def predict_votes(
        self, inputs: dict[str, np.ndarray], *, votings: Sequence[str]
    ) -> dict[str, Prediction]:
        """Each vote of `votings` over every member, for inputs made by `encode`: rule ->
        `predict_encoded(inputs, voting=rule)` of an ensemble loaded with fused=False, with the
        members run once for all the rules (a sentence encoder is most of the time): in one run
        of the fused graph where it gives every member's probabilities (what members share,
        such as one sentence encoder, is then computed once), else member by member."""
        if self._fused_session is not None and self._fused_spec.member_max_abs_diff is not None:
            outputs = [member_output(m) for m in self.member_ids]
            member_probs = dict(
                zip(self.member_ids, self._run_outputs(self._fused_session, inputs, outputs))
            )
        else:
            member_probs = self._forward_members(self.member_ids, inputs)
        return {
            rule: self._prediction(*self.vote_of(member_probs, voting=rule), member_probs)
            for rule in votings
        }

    def vote_of(self, member_probs: dict[str, np.ndarray], *, voting: str = "soft"):
        """(probs, label_ids) of the vote `voting` over already computed member probabilities (a
        subset of this bundle's members, by id), with the weights `predict` would give them; the
        vote without one member, for instance, without running any model again."""
        chosen, weights, _ = self._plan(voting, None, list(member_probs))
        return vote(
            [member_probs[m] for m in chosen],
            voting=voting,
            weights=weights,
            stacker=self.manifest.stacker,
        )

    def close(self) -> None:
        """Stop the worker threads of separate sessions (also done at interpreter exit)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def runs_fused(self, *, voting: str = "soft", weights=None, members=None) -> bool:
        """Whether predict with these options runs the fused graph; VoxpopError for bad options."""
        return self._plan(voting, weights, members)[2]

    # -- members and weights ---------------------------------------------------------------
    def _plan(self, voting: str, weights, members) -> tuple[list[str], np.ndarray | None, bool]:
        """(chosen member ids, weights or None, whether the fused graph computes this vote)."""
        chosen = self._choose_members(members)
        weights = self._weights(voting, weights, chosen)
        if voting == "stack" and chosen != self.member_ids:
            raise VoxpopError("--voting stack: the stacker reads every member; drop --members")
        if voting == "stack" and weights is not None:
            raise VoxpopError("--voting stack: takes no --weights (the stacker has its own)")
        if weights is not None:
            weights = check_weights(weights, len(chosen))
        return chosen, weights, self._fused_computes(voting, weights, chosen)

    def _choose_members(self, members: Sequence[str] | None) -> list[str]:
        if members is None:
            return self.member_ids
        chosen = list(members)
        unknown = [m for m in chosen if m not in self._members]
        if unknown or not chosen or len(set(chosen)) != len(chosen):
            raise VoxpopError(
                f"--members: {', '.join(chosen) or '(none)'} must be distinct ids of this bundle "
                f"(choose from {', '.join(self.member_ids)})"
            )
        return chosen

    def _weights(self, voting: str, weights, chosen: list[str]) -> np.ndarray | None:
        if voting not in VOTERS:
            raise VoxpopError(
                f"--voting: unknown voting {voting!r} (choose from {', '.join(VOTERS)})"
            )
        if voting == "stack" and self.manifest.stacker is None:
            raise VoxpopError(
                f"--voting stack: {self.bundle} has no stacker (export it with --combine stack)"
            )
        if weights is not None:
            return np.asarray(weights, dtype=np.float64)
        if voting != "weighted":
            return None
        return np.asarray([self._bundle_weight(m) for m in chosen], dtype=np.float64)

    def _bundle_weight(self, member_id: str) -> float:
        return self.manifest.voting.weights[self.member_ids.index(member_id)]

    def _fused_computes(self, voting: str, weights, chosen: list[str]) -> bool:
        """True when the fused graph's weighted soft vote is exactly the vote asked for."""
        if self._fused_session is None or voting == "hard" or chosen != self.member_ids:
            return False
        if voting == "stack":
            return self._fused_spec.stack_max_abs_diff is not None
        asked = np.ones(len(chosen)) if weights is None else np.asarray(weights, dtype=np.float64)
        fused = np.asarray(self._fused_spec.weights, dtype=np.float64)
        if asked.shape != fused.shape or asked.sum() <= 0:
            return False
        return bool(np.allclose(asked / asked.sum(), fused / fused.sum(), rtol=0, atol=1e-9))

    # -- forward ---------------------------------------------------------------------------
    def _forward_members(
        self, chosen: list[str], inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        sessions = [self._member_session(m, n_running=len(chosen)) for m in chosen]
        if len(sessions) == 1 or self.graph_threads == 1:
            outputs = [self._run(session, inputs) for session in sessions]
        else:
            # ONNX Runtime releases the GIL while running: members run side by side.
            outputs = list(self._worker_pool().map(lambda s: self._run(s, inputs), sessions))
        return dict(zip(chosen, outputs))

    def _member_session(self, member_id: str, *, n_running: int):
        if member_id not in self._member_sessions:
            threads = split_threads(self.graph_threads, min(n_running, self.graph_threads))
            self._member_sessions[member_id] = self._open(
                self._members[member_id].file, intra_op_threads=threads
            )
        return self._member_sessions[member_id]

    def _worker_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.graph_threads, thread_name_prefix="voxpop-member"
            )
        return self._pool

    def _open(self, relative: str, *, intra_op_threads: int):
        """A session for the bundle file `relative` (from its verified bytes), checked on the
        check rows against what the manifest says it computes."""
        source = str(self.bundle / relative)
        session = open_session(
            self._files.read(relative),
            source=source,
            device=self.requested_device,
            intra_op_threads=intra_op_threads,
        )
        fused = self.manifest.fused is not None and relative == self.manifest.fused.file
        self._trims_padding[id(session)] = any(
            m.trims_padding for m in self.manifest.members if fused or m.file == relative
        )
        self._check_session(session, relative, source)
        return session

    def _check_session(self, session, relative: str, source: str) -> None:
        shapes = {output.name: output.shape for output in session.get_outputs()}
        if "probs" not in shapes:
            raise VoxpopError(f"{source}: has no output named probs")
        width = shapes["probs"][-1] if shapes["probs"] else None
        if isinstance(width, int) and width != len(self.labels):
            raise VoxpopError(
                f"{source}: its output probs has {width} columns, but the bundle has "
                f"{len(self.labels)} labels"
            )
        expected = self._expected_check_probs(relative)
        try:  # every output from one pass over the check rows
            got = self._run_outputs(session, self._encoded_check_rows(), list(expected))
        except VoxpopError:
            raise
        except Exception as err:  # onnxruntime's own errors: wrong input types, a bad graph
            raise VoxpopError(
                f"{source}: ONNX Runtime fails on the check rows ({first_line(err)})"
            ) from None
        for (what, probs), values in zip(expected.values(), got):
            self._check_output(session, what, probs, np.asarray(values), source)

    def _check_output(
        self, session, what: str, expected: np.ndarray, got: np.ndarray, source: str
    ) -> None:
        if got.shape != expected.shape or got.dtype.kind != "f":
            raise VoxpopError(
                f"{source}: gives {got.dtype} values of shape {got.shape} on the "
                f"{len(expected)} check rows, expected floats of shape "
                f"{expected.shape} (one column per label)"
            )
        diff = float(np.abs(got - expected).max())
        tolerance = (
            INT8_TOLERANCE
            if self.manifest.quantization == "int8"
            else CHECK_TOLERANCE[session_device(session)]
        )
        if not diff <= tolerance:
            raise VoxpopError(
                f"{source}: on the bundle's {len(expected)} check rows it differs "
                f"from {what} by {diff:.2g} (allowed {tolerance:g}): the graph, the "
                "preprocessor or the weights changed after export"
            )

    def _expected_check_probs(self, relative: str) -> dict[str, tuple[str, np.ndarray]]:
        """Output name -> (what the graph at `relative` must reproduce there, those
        probabilities on the check rows)."""
        stored = self.manifest.check_rows.probs
        fused = self.manifest.fused
        if fused is not None and relative == fused.file:
            members = np.stack([np.asarray(stored[m]) for m in self.member_ids])
            expected = {
                "probs": (
                    "the weighted vote of the members' stored check probabilities",
                    np.average(members, axis=0, weights=fused.weights),
                )
            }
            if fused.stack_max_abs_diff is not None:
                expected[STACK_OUTPUT] = (
                    "the stacker on the members' stored check probabilities",
                    stack_probs(members, self.manifest.stacker),
                )
            if fused.member_max_abs_diff is not None:
                expected.update(
                    (member_output(m), (f"member {m}'s stored check probabilities", probs))
                    for m, probs in zip(self.member_ids, members)
                )
            return expected
        member = next(m for m in self.manifest.members if m.file == relative)
        return {
            "probs": (
                f"member {member.id}'s stored check probabilities",
                np.asarray(stored[member.id]),
            )
        }

    def _encoded_check_rows(self) -> dict[str, np.ndarray]:
        if self._check_inputs is None:
            check = self.manifest.check_rows
            features = None if check.features is None else np.asarray(check.features, np.float64)
            if self.preprocessor.user_feature_names and features is None:
                raise VoxpopError(
                    f"{self.bundle / MANIFEST}: check_rows.features missing "
                    "(the preprocessor reads feature columns)"
                )
            needed = list(dict.fromkeys(name for m in self.manifest.members for name in m.inputs))
            self._check_inputs = self.preprocessor.encode(check.texts, features, inputs=needed)
        return self._check_inputs

    def _run(self, session, inputs: dict[str, np.ndarray], *, output: str = "probs") -> np.ndarray:
        return self._run_outputs(session, inputs, [output])[0]

    def _run_outputs(
        self, session, inputs: dict[str, np.ndarray], outputs: list[str]
    ) -> list[np.ndarray]:
        feeds = {}
        for graph_input in session.get_inputs():
            if graph_input.name not in inputs:
                raise VoxpopError(
                    f"{self.bundle}: a model needs input '{graph_input.name}', which the preprocessor "
                    f"does not make (it makes {', '.join(inputs)})"
                )
            feeds[graph_input.name] = inputs[graph_input.name]
        key = length_key(feeds, trims_tokens=self._trims_padding.get(id(session), False))
        return run_outputs_by_length(session, feeds, key=key, outputs=outputs)

    def _prediction(
        self, probs: np.ndarray, label_ids: np.ndarray, member_probs=None
    ) -> Prediction:
        label_ids = np.asarray(label_ids, dtype=np.int64)
        return Prediction(
            labels=[self.labels[i] for i in label_ids],
            label_ids=label_ids,
            probs=probs.astype(np.float32, copy=False),
            confidence=probs[np.arange(len(label_ids)), label_ids].astype(np.float32),
            member_probs=member_probs or {},
        )


def _check_inputs_made(bundle: Path, manifest: Manifest, preprocessor) -> None:
    """Every input a member reads is one the bundle's preprocessor makes."""
    for member in manifest.members:
        missing = [name for name in member.inputs if name not in preprocessor.input_names]
        if missing:
            raise VoxpopError(
                f"{bundle / MANIFEST}: member {member.id} reads "
                f"{', '.join(missing)}, which {manifest.preprocess} does not make "
                f"(it makes {', '.join(preprocessor.input_names)})"
            )
