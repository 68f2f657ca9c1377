"""The JSON shapes of the Open Inference Protocol (KServe v2 REST, as Triton speaks it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RequestInput(BaseModel):
    """One input tensor: its data inline as JSON, or in the binary part of the body
    (parameters.binary_data_size, the binary tensor data extension)."""

    name: str
    shape: list[int] = Field(description="e.g. [N, 1, 28, 28] for FP32 pixels, [N] for BYTES images")
    datatype: str = Field(description="FP32 or BYTES")
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class RequestOutput(BaseModel):
    """An output the caller wants, optionally as binary (parameters.binary_data)."""

    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequest(BaseModel):
    """POST /v2/models/{name}[/versions/{version}]/infer's JSON (or its binary header)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput] = Field(min_length=1, max_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    """One output tensor: JSON data, or parameters.binary_data_size bytes after the header."""

    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[float | bool] | None = None  # FP32 and INT64 numbers; BOOL true/false (is_digit)


class InferResponse(BaseModel):
    """The infer response (service/v2/tensors.encode_response writes it; /docs.json shows it)."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    """A tensor in model metadata: -1 marks the batch dimension."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """GET /v2/models/{name}[/versions/{version}]."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    """GET /v2."""

    name: str
    version: str
    extensions: list[str]
