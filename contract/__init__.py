"""The model hand-off between training and serving: what `models/` holds and what it means.

One small typed contract that both halves import (pydantic only, never torch or onnxruntime):

    models/served.json            Served: which version is served, earlier ones newest first
    models/<version>/model.onnx   the graph
    models/<version>/metadata.json  Metadata: names, shapes, labels, sha256, accuracy, provenance

A version is `<architecture>-<first 8 hex of model.onnx's sha256>`: content addressed, so a
promotion never overwrites anything. Training writes these files, the service and the bento
build read them, and the tests check them, all through this module; `contract.store` keeps the
same versions in BentoML's model store, which `bentoml build` packs from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SERVED_FILE = "served.json"
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
LABELS = [str(d) for d in range(10)]


class ContractError(RuntimeError):
    """models/ does not hold what the contract says: the message names the file and the problem."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def version_name(architecture: str, sha256: str) -> str:
    """The content-addressed version of a graph: `<architecture>-<sha256[:8]>`."""
    return f"{architecture}-{sha256[:8]}"


class TensorSpec(BaseModel):
    """One graph input or output: its name and shape ("N" is the dynamic batch dimension)."""

    name: str
    shape: list[int | str]
    dtype: Literal["float32"] = "float32"


class InputSpec(TensorSpec):
    """The graph's input: (N, 1, 28, 28) float32 pixels, their range and polarity."""

    range: tuple[float, float] = (0.0, 1.0)
    polarity: Literal["white-on-black"] = "white-on-black"
    preprocessing: str | None = None

    @field_validator("shape")
    @classmethod
    def _mnist_frames(cls, shape: list[int | str]) -> list[int | str]:
        if len(shape) != 4 or list(shape[1:]) != [1, 28, 28]:
            raise ValueError(f"input shape must be [N, 1, 28, 28], not {shape}")
        return shape


class OutputSpecs(BaseModel):
    """The outputs: raw logits and their softmax, (N, 10) each, and, in a model with a digit
    detector, digit_score (N,): how much each frame looks like one handwritten digit."""

    logits: TensorSpec
    probabilities: TensorSpec
    digit_score: TensorSpec | None = None

    @model_validator(mode="after")
    def _ten_classes(self) -> OutputSpecs:
        for spec in (self.logits, self.probabilities):
            if len(spec.shape) != 2 or spec.shape[1] != 10:
                raise ValueError(f"output {spec.name!r} must have shape [N, 10], not {spec.shape}")
        if self.digit_score is not None and len(self.digit_score.shape) != 1:
            raise ValueError(f"output {self.digit_score.name!r} must have shape [N], not {self.digit_score.shape}")
        return self


class DigitDetector(BaseModel):
    """metadata.json's digit_detector: which output scores "one handwritten digit" in [0, 1],
    and the threshold under which a frame is flagged as not a digit, fitted on validation."""

    model_config = ConfigDict(extra="allow")  # how it was fitted and measured: auroc, kinds, ...

    output: str
    threshold: float = Field(gt=0.0, lt=1.0)
    fitted_on: str | None = None
    keeps: float | None = Field(default=None, gt=0.0, le=1.0)  # share of validation digits at or above


class Metadata(BaseModel):
    """metadata.json: every field without a default is one the service relies on."""

    # "model_config" is one of our keys (the architecture's config), so pydantic's own
    # configuration attribute of that name must not claim it: it is read through an alias.
    model_config = ConfigDict(extra="allow", protected_namespaces=(), populate_by_name=True)

    version: str
    architecture: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: InputSpec
    outputs: OutputSpecs
    labels: list[str] = Field(min_length=10, max_length=10)
    test_accuracy: float = Field(ge=0.0, le=1.0)  # fraction, full 10,000-image test set
    per_class_recall: list[float] = Field(min_length=10, max_length=10)
    parameters: int | None = None
    opset: int | None = None
    architecture_config: dict[str, Any] | None = Field(default=None, alias="model_config")
    exported_at: str | None = None
    digit_detector: DigitDetector | None = None

    @model_validator(mode="after")
    def _content_addressed(self) -> Metadata:
        expected = version_name(self.architecture, self.sha256)
        if self.version != expected:
            raise ValueError(f"version {self.version!r} is not {expected!r} (architecture + sha256[:8])")
        return self

    @model_validator(mode="after")
    def _detector_and_its_output(self) -> Metadata:
        """A detector without its output (or the reverse) would be served half: refuse both."""
        score, detector = self.outputs.digit_score, self.digit_detector
        if (score is None) != (detector is None):
            raise ValueError(
                "outputs.digit_score and digit_detector come together: "
                f"this file has {'only outputs.digit_score' if detector is None else 'only digit_detector'}"
            )
        if score is not None and detector is not None and detector.output != score.name:
            raise ValueError(f"digit_detector.output {detector.output!r} is not outputs.digit_score's {score.name!r}")
        return self

    def dump(self) -> dict[str, Any]:
        """The JSON object as written to disk (aliases, extra keys kept)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Served(BaseModel):
    """served.json: the served version and earlier served ones, newest first (rollback pops)."""

    served: str | None = None
    history: list[str] = []

    def versions(self) -> list[str]:
        """Every version this file names: the served one first."""
        return [v for v in [self.served, *self.history] if v]


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], path: Path) -> M:
    """A contract file parsed and checked; any problem is one ContractError naming the file."""
    try:
        return model.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ContractError(f"{path} is missing") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in exc.errors())
        raise ContractError(f"{path} is not valid: {problems}") from None


def read_served(models_dir: Path) -> Served:
    """models_dir/served.json, or an empty Served when there is none yet."""
    path = models_dir / SERVED_FILE
    return _parse(Served, path) if path.exists() else Served()


def write_served(models_dir: Path, served: Served) -> None:
    """Replace served.json atomically: a reader sees the old file or the new one, never half."""
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=".served-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(served.model_dump_json(indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, models_dir / SERVED_FILE)


@dataclass(frozen=True)
class ModelFiles:
    """The two files of one model version."""

    onnx: Path
    metadata: Path

    @classmethod
    def of(cls, folder: Path) -> ModelFiles:
        return cls(onnx=folder / MODEL_FILE, metadata=folder / METADATA_FILE)


def resolve(models_dir: Path, version: str | None = None, path: Path | None = None) -> ModelFiles:
    """Which model: an explicit path (file or folder), else a version, else served.json's choice."""
    if path is not None:
        folder = path.parent if path.is_file() else path
        files = ModelFiles(onnx=path if path.is_file() else folder / MODEL_FILE, metadata=folder / METADATA_FILE)
    else:
        if version is None:
            if not (models_dir / SERVED_FILE).exists():
                raise ContractError(
                    f"no {models_dir / SERVED_FILE}: train and promote a model first "
                    "(`make pipeline`), or set MNIST_MODEL_VERSION / MNIST_MODEL_PATH"
                )
            version = read_served(models_dir).served
            if not version:
                raise ContractError(f"{models_dir / SERVED_FILE} names no served version")
        files = ModelFiles.of(models_dir / version)
    for f in (files.onnx, files.metadata):
        if not f.is_file():
            raise ContractError(f"model file {f} is missing")
    return files


def read_metadata(files: ModelFiles, check_sha256: bool = True) -> Metadata:
    """metadata.json, validated, and checked against the ONNX bytes it describes."""
    meta = _parse(Metadata, files.metadata)
    if check_sha256:
        actual = sha256_file(files.onnx)
        if actual != meta.sha256:
            raise ContractError(
                f"{files.onnx} is corrupt or not the model its metadata describes: "
                f"sha256 {actual[:12]}... != {meta.sha256[:12]}... in {files.metadata.name}"
            )
    return meta


def write_metadata(folder: Path, metadata: dict[str, Any]) -> Metadata:
    """Validate metadata against the contract before it is written: an export never lands half-described."""
    try:
        meta = Metadata.model_validate(metadata)
    except ValidationError as exc:
        raise ContractError(f"metadata for {folder} breaks the contract: {exc}") from None
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return meta


# Kustomizations whose `mnist` image is tagged with the served version (`make container` tags the
# image so; the production overlay inherits the base's). Rewritten on every promotion and rollback,
# so the manifests never lag served.json.
IMAGE_TAG_FILES = ("deploy/k8s/base/kustomization.yaml", "deploy/k8s/overlays/kserve/kustomization.yaml")
_IMAGES = re.compile(r"^images:\n(?:[ #-][^\n]*\n|\n)*", re.M)  # the `images:` list, to the next top-level key
_ENTRY = re.compile(r"^(?P<i>[ ]*)- [^\n]*\n(?:(?P=i)[ ]{2}[^\n]*\n)*", re.M)  # one item, whatever its key order
_MNIST = re.compile(r"^[ ]*(?:- )?name: mnist[ ]*(?:#[^\n]*)?$", re.M)
_NEW_TAG = re.compile(r"^([ ]*(?:- )?newTag: )\S+", re.M)
_DIGEST = re.compile(r"^(?P<i>[ ]*)(?P<dash>- )?digest: [^\n]*\n", re.M)


def _retag_entry(entry: str, version: str) -> str:
    """An `images:` item: if it is the `mnist` image, its newTag set to `version` and its digest
    dropped (a digest names the image of the version before; docs/deploy.md pins the new one)."""
    if not _MNIST.search(entry):
        return entry
    entry = _NEW_TAG.sub(lambda m: m.group(1) + version, entry)
    if digest := _DIGEST.search(entry):
        rest = entry[digest.end() :]
        if digest["dash"]:  # the digest opened the item (kustomize writes keys sorted): the next key opens it
            rest = digest["i"] + "- " + rest[len(digest["i"]) + 2 :]
        entry = entry[: digest.start()] + rest
    return entry


def sync_image_tags(root: Path, version: str) -> list[Path]:
    """Point the `mnist` image of every kustomization under `root`/deploy/k8s at `version` (the
    IMAGE_TAG_FILES, and an overlay that pinned a tag or digest of its own); the files that changed."""
    changed = []
    for path in sorted((root / "deploy" / "k8s").glob("**/kustomization.yaml")):
        text = path.read_text()
        new = _IMAGES.sub(lambda s: _ENTRY.sub(lambda e: _retag_entry(e.group(0), version), s.group(0)), text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed
