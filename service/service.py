"""The BentoML service (`bentoml serve` loads service.service:MnistService): the endpoints,
glue between transport (service.transport), images (service.images), the model (service.model)
and answers (service.answers); v2 is service.v2, the server's plumbing service.server.

A new image endpoint: an input spec in service.transport.specs (its read_request gives it
frames, refusals and limits included), an output spec there, and an API method here that
runs self._run(frames) and answers through service.answers."""

from __future__ import annotations

import io
import logging
from typing import Any

import anyio.from_thread
import anyio.to_thread
import bentoml
import numpy as np
from PIL import Image

from contract import read_served
from contract.number import MAX_DIGITS
from service import openapi, pages
from service.answers import number_json, prediction_answers, predictions_json
from service.errors import ACCEPTED_NUMBER, BadInput, not_a_digit
from service.images import preprocess
from service.images.decode import Decoded
from service.model import Classifier, ModelError, NotServable, Outputs, declared_models, resolve, validate
from service.server import connections, internals, metrics, security, supervisor, traffic
from service.server.memory import tune_gc, tune_malloc
from service.settings import get_settings
from service.transport.limits import decode_threads
from service.transport.specs import (
    Answer,
    Frames,
    ImageInput,
    ImagesInput,
    NumberInput,
    NumberOutput,
    PixelsInput,
    PngOutput,
    PredictionOutput,
    PredictionsOutput,
    PreprocessInput,
    Upload,
)
from service.v2 import protocol as v2_protocol
from service.v2 import routes as v2_routes
from service.v2.openapi import addressable_versions
from service.v2.protocol import INFER_ROUTE, InferInput, InferOutput, Item, Versions, infer_paths

logger = logging.getLogger("service")
# BentoML's server logging shows its own INFO lines and only WARNING+ from others: ours too.
logger.setLevel(logging.INFO)
settings = get_settings()
# The library versions whose internals service/server/internals.py relies on: refused outside
# their range, a warning when untested. Then, in `bentoml serve`'s processes only: worker deaths
# logged and one metrics folder per instance (the arbiter); header deadline, size limit,
# connection cap and age, security headers (each worker).
internals.check_versions()
if internals.serving_process():
    internals.install(connections.protocol(settings), connections.headers(settings), supervisor.watcher_class)
# Checked when `bentoml serve` (or build) imports this module, before any worker starts: a
# missing, corrupt or mis-described model stops start-up here with one clear error instead of
# workers failing and being restarted forever. From a checkout the files are models/<version>/;
# from a bento, BentoML's model store (service.model.resolve).
try:
    MODEL_FILES = resolve(settings.models_dir, settings.model_version, settings.model_path)
    SERVED = validate(MODEL_FILES)  # metadata.json, read and checked once: passed down from here
    NAMED = read_served(settings.models_dir).versions()  # served.json's versions, read once
except ModelError as exc:
    raise NotServable(str(exc)) from None
# The store models `bentoml build` packs: the served version and the earlier ones v2 serves by
# name (none when MNIST_MODEL_PATH names a file outside models/ and the store).
MODELS = [] if settings.model_path else declared_models(settings.models_dir, SERVED.version, NAMED)


@security.guarded(settings)  # MNIST_API_KEYS: a 401 without a key; nothing when unset
@bentoml.service(
    name="mnist",
    workers=settings.workers,
    threads=1,  # batched predictions run one at a time per worker, on the model's own threads
    # service.server.traffic answers at timeout_s with our 504; BentoML's own timeout is a backstop.
    traffic={"timeout": settings.timeout_s + traffic.BACKSTOP_S},
    logging={"access": {"enabled": settings.access_log}},
    # Unsampled OpenTelemetry spans still cost a small request dearly (BENCHMARKS.md): off
    # unless asked for.
    tracing={} if settings.tracing else {"excluded_urls": ["/"]},
    labels={"model_version": SERVED.version},  # the bento's label: which model it serves
)
@bentoml.asgi_app(  # our /docs.json
    openapi.build_app(lambda: MnistService, addressable_versions(settings.models_dir, SERVED.version, NAMED)), path="/"
)
@bentoml.asgi_app(pages.build_app(), path="/")  # /model, /ui
@bentoml.asgi_app(v2_routes.build_app(v2_protocol.LOADED), path="/")  # the Open Inference Protocol's GETs
class MnistService:
    """Reads handwritten digits: one ONNX model per worker, loaded and checked once."""

    # Declared as BentoML 1.4 services declare models: `bentoml build` packs it from the model store.
    served_model = MODELS[0] if MODELS else None

    def __init__(self) -> None:
        self.threads = settings.threads_per_worker
        self.classifier = Classifier(
            MODEL_FILES,
            settings.provider,
            self.threads,
            spinning=settings.spinning,
            digit_threshold=settings.digit_threshold,
            meta=SERVED,
        )
        self.classifier.warm_up()
        # MNIST_REJECT_NON_DIGITS: /predict refuses what the digit detector flags (needs one).
        self.reject_non_digits = settings.reject_non_digits and self.classifier.has_detector
        if settings.reject_non_digits and not self.classifier.has_detector:
            logger.warning(
                "model %s has no digit detector: MNIST_REJECT_NON_DIGITS has no effect", self.classifier.version
            )
        # The Open Inference Protocol's versions: this one (the default) and the earlier ones
        # served.json lists, each its own session (service/v2/protocol.py).
        self.v2 = Versions(self.classifier, settings, NAMED)
        v2_protocol.LOADED.versions = self.v2  # v2's input spec and GET routes read it
        # One CPU thread per worker (the default): the model runs on the calling thread anyway,
        # so run it on the event loop and save two thread switches per batch (a sixth more
        # /predict requests/s when measured). More threads, or a GPU to wait for: a thread.
        self.inline = self.threads == 1 and self.classifier.provider == "CPUExecutionProvider"
        # Each API method bound once, not twice per request (service/server/internals.py).
        internals.bind_api_methods(self, MnistService.apis)  # type: ignore[attr-defined]  # added by @bentoml.service
        tune_malloc()
        if settings.gc_freeze:
            tune_gc()
        logger.info(
            "serving %s on %s; draw a digit at %s (API docs at /)",
            self.classifier.version,
            self.classifier.provider,
            " or ".join(pages.ui_urls()) or "/ui",
        )

    def __is_ready__(self) -> bool:
        """/readyz: only once __init__ has loaded, checked and warmed up the model."""
        return self.classifier is not None

    def model_info(self) -> dict[str, Any]:
        """GET /model's answer (the mounted pages app asks the current service)."""
        return pages.model_info(
            self.classifier.metadata,
            self.classifier.provider,
            self.threads,
            digit_threshold=self.classifier.digit_threshold,
            reject_non_digits=self.reject_non_digits,
        )

    def _run(self, pixels: np.ndarray) -> Outputs:
        """(N, 28, 28) float32 -> (N, 10) probabilities and, with a detector, (N,) digit scores
        and flags, in max_batch_size chunks, counted into the drift metrics: every endpoint's
        one way to the model."""
        out = self._outputs(pixels)
        metrics.record(out.probabilities, settings.low_confidence, out.is_digit)
        return out

    def _outputs(self, pixels: np.ndarray) -> Outputs:
        """_run without the drift metrics (a number's candidate frames are not answers)."""
        chunk = settings.max_batch_size
        return Outputs.concat(
            [self.classifier.run(pixels[i : i + chunk]) for i in range(0, max(len(pixels), 1), chunk)]
        )

    def _predict(self, pixels: np.ndarray) -> list[Answer]:
        """(N, 28, 28) float32 -> N JSON Predictions; with MNIST_REJECT_NON_DIGITS, a 422 for
        each image the detector flags."""
        out = self._run(pixels)
        answers: list[Answer] = list(
            prediction_answers(
                out.probabilities, self.classifier.labels, self.classifier.version, out.digit_score, out.is_digit
            )
        )
        threshold = self.classifier.digit_threshold
        if (
            self.reject_non_digits
            and out.digit_score is not None
            and out.is_digit is not None
            and threshold is not None
        ):
            for i in np.flatnonzero(~out.is_digit).tolist():
                answers[i] = not_a_digit(float(out.digit_score[i]), threshold)
        return answers

    # Every image endpoint: transport -> decode -> frame in its input spec (transport.specs),
    # then model -> answer here; a refusal travels as a BadInput to the output spec.

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
        input_spec=ImageInput,
        output_spec=PredictionOutput,
    )
    async def predict(self, image: list[np.ndarray | BadInput]) -> list[Answer]:
        """Read the digit in one image. Concurrent calls share one onnxruntime run."""
        good = [i for i, item in enumerate(image) if not isinstance(item, BadInput)]
        frames = [item for item in image if not isinstance(item, BadInput)]
        # refused uploads answer with their own BadInput; the others are filled in below
        answers: list[Answer] = [item if isinstance(item, BadInput) else b"" for item in image]
        if good:
            batch = np.stack(frames)  # (n, 28, 28) float32
            if self.inline:
                found = self._predict(batch)
            else:
                found = await anyio.to_thread.run_sync(self._predict, batch)
            for i, prediction in zip(good, found, strict=True):
                answers[i] = prediction
        for answer in answers:  # refused uploads, and non-digits under MNIST_REJECT_NON_DIGITS
            if isinstance(answer, BadInput):
                metrics.rejected("predict", answer.status)
        return answers

    @bentoml.api(
        batchable=True,
        max_batch_size=settings.max_batch_size,
        max_latency_ms=settings.max_latency_ms,
        route=INFER_ROUTE,
        input_spec=InferInput,
        output_spec=InferOutput,
    )
    async def v2_infer(self, items: list[Item | BadInput]) -> list[object]:
        """Open Inference Protocol infer, any version: concurrent requests share one batch
        per version (service/v2/protocol.py says why this is its own batching queue)."""
        for item in items:
            if isinstance(item, BadInput):
                metrics.rejected("v2_infer", item.status)
        if self.inline:
            return self.v2.run(items, self._run)
        return await anyio.to_thread.run_sync(self.v2.run, items, self._run)

    @bentoml.api(input_spec=ImagesInput, output_spec=PredictionsOutput)
    async def predict_batch(self, images: Frames) -> Answer:
        """Read many images in one request; answers come in the same order."""
        return await self._answer("predict_batch", images)

    @bentoml.api(input_spec=PixelsInput, output_spec=PredictionsOutput)
    async def predict_pixels(self, images: Frames) -> Answer:
        """Read 28x28 pixel arrays sent as JSON (ints 0-255 or floats 0-1, white on black)."""
        return await self._answer("predict_pixels", images)

    async def _answer(self, endpoint: str, frames: Frames) -> Answer:
        """A whole request's frames -> JSON list[Prediction], the model off the event loop."""
        if isinstance(frames, BadInput):
            metrics.rejected(endpoint, frames.status)
            return frames
        return await anyio.to_thread.run_sync(self._predict_json, frames)

    def _predict_json(self, pixels: np.ndarray) -> bytes:
        """(N, 28, 28) float32 -> JSON list[Prediction]; non-digits are flagged, never refused."""
        out = self._run(pixels)
        return predictions_json(
            out.probabilities, self.classifier.labels, self.classifier.version, out.digit_score, out.is_digit
        )

    @bentoml.api(input_spec=NumberInput, output_spec=NumberOutput)
    async def read_number(self, image: Upload) -> Answer:
        """Read a handwritten number: its digits left to right, each with its box."""
        answer: Answer
        if isinstance(image, BadInput):
            answer = image
        else:
            accepted = ACCEPTED_NUMBER.format(max_digits=MAX_DIGITS)
            try:  # segmenting and framing cost milliseconds: a decode thread, as a photo's decode
                answer = await decode_threads().run(self._read_number, image, accepted=accepted)
            except BadInput as exc:
                answer = exc
        if isinstance(answer, BadInput):
            metrics.rejected("read_number", answer.status)
        return answer

    def _read_number(self, image: Decoded) -> bytes:
        """In a decode thread: contract.number's reader, its classifier this worker's session
        (reached as /predict reaches it), only the digits read counted into the drift metrics."""
        threshold = self.classifier.digit_threshold
        number = preprocess.read_number(
            image, self._classify_parts, 0.0 if threshold is None else threshold, MAX_DIGITS
        )
        digits = number.digits
        metrics.record_digits(
            np.array([d.digit for d in digits], np.int64),
            np.array([d.confidence for d in digits], np.float64),
            settings.low_confidence,
            np.array([d.is_digit for d in digits]) if threshold is not None else None,
        )
        return number_json(number, self.classifier.version, threshold is not None)

    def _classify_parts(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 28, 28) candidate frames -> (N, 10) probabilities, (N,) digit scores (ones without
        a detector). Called from a decode thread: with one CPU thread the model runs on the event
        loop as /predict's batches do, so that a worker never runs two inferences at once."""
        out = anyio.from_thread.run_sync(self._outputs, frames) if self.inline else self._outputs(frames)
        scores = out.digit_score if out.digit_score is not None else np.ones(len(frames), np.float32)
        return out.probabilities, scores

    @bentoml.api(input_spec=PreprocessInput, output_spec=PngOutput)
    async def preprocess(self, image: list[np.ndarray | BadInput]) -> Answer:
        """The 28x28 image the model sees for an upload, as PNG: why was my photo misread?
        With ?show=region: the upload with the region the frame was cut from drawn on it."""
        (item,) = image
        if isinstance(item, BadInput):
            metrics.rejected("preprocess", item.status)
            return item
        png = io.BytesIO()
        if item.ndim == 3:  # ?show=region: (h, w, 3) uint8 RGB
            Image.fromarray(item, mode="RGB").save(png, "PNG")
        else:
            Image.fromarray(np.round(item * 255).astype(np.uint8), mode="L").save(png, "PNG")
        return png.getvalue()


# @bentoml.service adds `apis` and `add_asgi_middleware` to the class; mypy cannot see them.
_api_paths = frozenset(api.route for api in MnistService.apis.values())  # type: ignore[attr-defined]
MnistService.add_asgi_middleware(  # type: ignore[attr-defined]
    traffic.Deadline, timeout_s=settings.timeout_s, paths=_api_paths | infer_paths(SERVED.version, NAMED)
)


# The earlier versions v2 serves by name, declared beside the served one (a class's BentoModel
# attributes end up in this same list): `bentoml build` packs exactly MODELS.
MnistService.models.extend(MODELS[1:])  # type: ignore[attr-defined]
