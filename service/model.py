"""Find the served ONNX model, check it against its metadata, and run it with onnxruntime."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import onnxruntime as ort
from bentoml.exceptions import BentoMLException
from bentoml.models import BentoModel

import contract
from contract import ContractError, Metadata, ModelFiles, read_metadata, read_served, store

__all__ = [
    "Classifier",
    "ModelError",
    "ModelFiles",
    "NotServable",
    "Outputs",
    "StoreModel",
    "choose_providers",
    "declared_models",
    "load_metadata",
    "resolve",
    "validate",
]

logger = logging.getLogger(__name__)

# A model that breaks the contract is not servable: one error type, one line naming the file.
ModelError = ContractError


class NotServable(BentoMLException):
    """A ModelError met by `bentoml serve` or `bentoml build`: BentoML's CLI prints its own
    exceptions as one line (`... failed: <the problem>`) instead of a traceback."""


def resolve(models_dir: Path, version: str | None = None, path: Path | None = None) -> ModelFiles:
    """Which model, as the contract says (a path, else a version, else served.json's); a version
    whose folder models_dir lacks comes from BentoML's model store. A checkout has the folders;
    a bento has only served.json, its models being in the store `bentoml build` packed them from."""
    try:
        return contract.resolve(models_dir, version, path)
    except ContractError:
        wanted = version or read_served(models_dir).served
        if path is not None or not wanted or (models_dir / wanted).exists():
            raise
    found = store.stored(wanted)
    if found is None:
        raise ModelError(
            f"model {wanted} is missing: not in {models_dir} nor in BentoML's model store as {store.tag(wanted)} "
            "(bentoml models import it, or build the bento where it is)"
        )
    return found


@attrs.frozen
class StoreModel(BentoModel):  # type: ignore[misc]  # BentoML's SDK ships no type information
    """A version the service serves, declared as BentoML 1.4 services declare models, so that
    `bentoml build` packs it from the model store. A fresh clone's store is empty, so the version
    is put there from its models/ folder first, wherever BentoML looks a declared model up: at
    build (`to_info`, from bentoml/_internal/bento/bento.py's BentoServiceInfo.from_service) and
    when a server starts from source (`resolve`, from _bentoml_impl/server/serving.py's
    server_on_deployment), as of BentoML 1.4.40. Both are the public Model interface."""

    folder: Path | None = None  # models/<version> in a checkout; none in a bento

    def _in_store(self) -> None:
        if self.stored is None and self.folder is not None and self.folder.is_dir():
            try:
                store.put(self.folder)
            except ModelError as exc:
                raise NotServable(str(exc)) from None
        if self.stored is None:
            raise NotServable(
                f"model {self.tag} is not in BentoML's model store and {self.folder} does not hold it: "
                "promote a model (mnist promote) or bentoml models import it"
            )

    def to_info(self, alias: str | None = None) -> Any:
        self._in_store()
        return super().to_info(alias)

    def resolve(self, base_path: Any = None) -> Any:
        self._in_store()
        return super().resolve(base_path)


def _intact(models_dir: Path, version: str) -> bool:
    """Does models_dir hold this version as the contract says? A broken earlier version is left
    out of the bento (v2 skips it too) rather than failing the build or the start."""
    try:
        read_metadata(ModelFiles.of(models_dir / version))
    except ContractError as exc:
        logger.warning("%s is not declared (a bento leaves it out, v2 does not serve it): %s", version, exc)
        return False
    return True


def declared_models(models_dir: Path, served: str, named: list[str] | None = None) -> list[StoreModel]:
    """The store models a bento of this service packs: the served version, then the earlier
    versions served.json names (`named`, else read here) that models_dir holds intact or the store
    has (v2 serves them by name)."""
    named = read_served(models_dir).versions() if named is None else named
    earlier = [v for v in named if v != served]
    kept = [
        v for v in earlier if (_intact(models_dir, v) if (models_dir / v).is_dir() else store.stored(v) is not None)
    ]
    return [
        StoreModel(tag=store.tag(v), folder=models_dir / v)  # type: ignore[call-arg]  # `tag` is BentoModel's
        for v in [served, *kept]
    ]


def load_metadata(files: ModelFiles) -> dict[str, Any]:
    """metadata.json as written (GET /model answers with it), after the contract's checks."""
    read_metadata(files)
    raw: dict[str, Any] = json.loads(files.metadata.read_text())
    return raw


def _shape_fits(declared: list[int | str], actual: list[Any]) -> bool:
    """Does the graph's shape match metadata's? Symbolic dimensions match any name."""
    return len(declared) == len(actual) and all(
        isinstance(d, str) or not isinstance(a, int) or d == a for d, a in zip(declared, actual, strict=True)
    )


def validate(files: ModelFiles) -> Metadata:
    """The whole model checked once, in the serving process before any worker starts.

    metadata.json against the contract and the ONNX bytes; the graph loads in onnxruntime; its
    input and outputs (digit_score too, when it has a detector) carry metadata's names, dtypes
    and shapes; and a known input (blank and full frames) comes back as finite (2, 10)
    probabilities that sum to 1, and (2,) digit scores in [0, 1]. A worker would otherwise fail
    the same way, be restarted, and fail again, forever.
    """
    meta = read_metadata(files)
    where = f"{files.onnx}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(files.onnx), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a bad graph
        raise ModelError(f"onnxruntime cannot load {where}: {str(exc).splitlines()[0]}") from None
    graph_in = {i.name: i for i in session.get_inputs()}
    graph_out = {o.name: o for o in session.get_outputs()}
    score = meta.outputs.digit_score
    outputs = [meta.outputs.logits, meta.outputs.probabilities, *([score] if score else [])]
    wanted = [(meta.input, graph_in, "input")] + [(spec, graph_out, "output") for spec in outputs]
    for spec, nodes, kind in wanted:
        node = nodes.get(spec.name)
        if node is None:
            raise ModelError(f"{where}: metadata names {kind} {spec.name!r}, the graph has {sorted(nodes)}")
        if node.type != "tensor(float)":
            raise ModelError(f"{where}: {kind} {spec.name!r} is {node.type}, metadata says {spec.dtype}")
        if not _shape_fits(spec.shape, list(node.shape)):
            raise ModelError(f"{where}: {kind} {spec.name!r} has shape {node.shape}, metadata says {spec.shape}")
    known = np.stack([np.zeros((1, 28, 28), np.float32), np.ones((1, 28, 28), np.float32)])  # (2, 1, 28, 28)
    names = [meta.outputs.probabilities.name, *([score.name] if score else [])]
    try:
        probs, *scores = session.run(names, {meta.input.name: known})
    except Exception as exc:
        raise ModelError(f"{where}: inference on a known input failed: {str(exc).splitlines()[0]}") from None
    probs = np.asarray(probs)  # (2, 10)
    sane = np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=-1), 1.0, atol=1e-3)
    if probs.shape != (2, len(meta.labels)) or not sane:
        raise ModelError(
            f"{where}: a known input gave {probs.shape} outputs, not (2, 10) finite probabilities that sum to 1"
        )
    if score is not None:
        found = np.asarray(scores[0])  # (2,)
        if found.shape != (2,) or not np.all((found >= 0.0) & (found <= 1.0)):  # NaN fails both
            raise ModelError(
                f"{where}: a known input gave {score.name!r} of shape {found.shape} "
                f"({found.ravel()[:4].tolist()}), not (2,) finite scores in [0, 1]"
            )
    return meta


def choose_providers(requested: str) -> list[str]:
    """onnxruntime providers for auto|cpu|cuda; auto takes CUDA only where it is available."""
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if requested == "cuda" and not has_cuda:
        raise ModelError(
            f"MNIST_PROVIDER=cuda but this onnxruntime has no CUDA provider ({available}); "
            "install the `gpu` extra (onnxruntime-gpu) or use auto/cpu"
        )
    if requested == "auto":
        logger.info("provider auto: %s", "CUDA" if has_cuda else f"CPU (no CUDA in {available})")
    if requested == "cuda" or (requested == "auto" and has_cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class Outputs:
    """What the model answers for N frames. Without a detector, digit_score and is_digit are None."""

    probabilities: np.ndarray  # (N, 10) float32
    digit_score: np.ndarray | None = None  # (N,) float32 in [0, 1]: looks like one handwritten digit
    is_digit: np.ndarray | None = None  # (N,) bool: digit_score >= the threshold in force

    @staticmethod
    def concat(parts: list[Outputs]) -> Outputs:
        """The answers of consecutive chunks as one (at least one part)."""
        if len(parts) == 1:
            return parts[0]
        probs = np.concatenate([p.probabilities for p in parts])  # (N, 10)
        if parts[0].digit_score is None:
            return Outputs(probs)
        scores = np.concatenate([p.digit_score for p in parts if p.digit_score is not None])  # (N,)
        flags = np.concatenate([p.is_digit for p in parts if p.is_digit is not None])  # (N,)
        return Outputs(probs, scores, flags)


class Classifier:
    """One onnxruntime session over the served model; names come from metadata, not code.

    digit_threshold replaces the detector's fitted threshold (MNIST_DIGIT_THRESHOLD); it is
    ignored, with a warning, for a model without a detector.
    """

    def __init__(
        self,
        files: ModelFiles,
        provider: str = "auto",
        threads: int = 1,
        spinning: bool = False,
        digit_threshold: float | None = None,
        meta: Metadata | None = None,
    ) -> None:
        # meta: metadata.json as the service already read and checked it at start-up (else read here).
        self.meta = read_metadata(files) if meta is None else meta
        # GET /model answers with the file as written; nothing else reads this dict.
        self.metadata: dict[str, Any] = json.loads(files.metadata.read_text())
        self.version: str = self.meta.version
        self.labels = [int(label) for label in self.meta.labels]
        self.input_name: str = self.meta.input.name
        self.output_name: str = self.meta.outputs.probabilities.name
        # The digit detector, when the model has one: its output's name and the threshold in force.
        detector, score = self.meta.digit_detector, self.meta.outputs.digit_score
        self.score_name: str | None = score.name if detector and score else None
        self.digit_threshold: float | None = None
        if detector:
            self.digit_threshold = float(detector.threshold if digit_threshold is None else digit_threshold)
        elif digit_threshold is not None:
            logger.warning("model %s has no digit detector: MNIST_DIGIT_THRESHOLD is ignored", self.version)
        self._run_names = [self.output_name, *([self.score_name] if self.score_name else [])]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning idle inference threads steal the core that HTTP and decoding need between
        # batches (BENCHMARKS.md): off unless asked for.
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
        try:
            self.session = ort.InferenceSession(str(files.onnx), options, providers=choose_providers(provider))
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises its own types for a bad graph
            raise ModelError(f"onnxruntime cannot load {files.onnx}: {exc}") from None
        self.provider = self.session.get_providers()[0]
        names = {o.name for o in self.session.get_outputs()}
        inputs = {i.name for i in self.session.get_inputs()}
        if self.input_name not in inputs or not set(self._run_names) <= names:
            raise ModelError(
                f"graph has inputs {sorted(inputs)} and outputs {sorted(names)}, "
                f"metadata names {self.input_name!r} -> {self._run_names}"
            )
        logger.info(
            "model %s loaded from %s on %s (%d intra-op threads)",
            self.version,
            files.onnx,
            self.provider,
            threads,
        )

    @property
    def has_detector(self) -> bool:
        return self.score_name is not None

    def run(self, pixels: np.ndarray) -> Outputs:
        """(N, 28, 28) or (N, 1, 28, 28) float32 in [0, 1] -> probabilities and, with a
        detector, digit scores: one onnxruntime call for both."""
        batch = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 1, 28, 28)
        if batch.shape[0] == 0:
            probs, scores = np.zeros((0, len(self.labels)), np.float32), [np.zeros((0,), np.float32)]
        else:
            probs, *scores = self.session.run(self._run_names, {self.input_name: batch})  # (N, 10), (N,)
        if self.digit_threshold is None:
            return Outputs(np.asarray(probs))
        score = np.asarray(scores[0]).reshape(-1)  # (N,)
        return Outputs(np.asarray(probs), score, score >= self.digit_threshold)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 28, 28) or (N, 1, 28, 28) float32 in [0, 1] -> (N, 10) float32 probabilities."""
        return self.run(pixels).probabilities

    def warm_up(self) -> None:
        """One inference before /readyz says yes, so the first user pays no lazy init."""
        out = self.run(np.zeros((1, 28, 28), np.float32))
        probs = out.probabilities
        if probs.shape != (1, len(self.labels)) or not np.all(np.isfinite(probs)):
            raise ModelError(f"warm-up inference returned {probs.shape}, non-finite or wrong")
        if out.digit_score is not None and (out.digit_score.shape != (1,) or not np.isfinite(out.digit_score[0])):
            raise ModelError(f"warm-up inference returned digit scores {out.digit_score}, not one finite score")
