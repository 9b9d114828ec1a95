"""Model cards: what an .onnx file expects and produces, and the sha256 it must have."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ModelRefused


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalization(_Card):
    """How pixels become network input: (pixel - mean) / std, or a linear map onto a range."""

    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    scale_to: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Normalization:
        if (self.mean is None) != (self.std is None) or (self.mean is None) == (self.scale_to is None):
            raise ValueError("give mean and std, or scale_to")
        return self


class InputSpec(_Card):
    """The network's single image input."""

    name: str
    layout: Literal["NCHW", "NHWC"]
    shape: tuple[int, int, int, int]
    size: tuple[int, int] = Field(description="[width, height]")
    dtype: Literal["float32"]
    color: Literal["BGR", "RGB"]
    normalization: Normalization
    letterbox: bool


class OutputSpec(_Card):
    """One output tensor."""

    name: str
    shape: tuple[int, ...]
    kind: str
    stride: int | None = None


class Thresholds(_Card):
    """Default decision thresholds; config may override them per camera."""

    score: float = Field(gt=0, lt=1)
    nms_iou: float = Field(gt=0, lt=1)


class ModelCard(_Card):
    """Everything the daemon needs to run a model without code that knows it by name."""

    name: str
    file: str = Field(pattern=r"^[A-Za-z0-9_.-]+\.onnx$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    task: Literal["person", "face"]
    decoder: Literal["nanodet", "blazeface", "yolo"]
    description: str = ""
    input: InputSpec
    outputs: tuple[OutputSpec, ...] = Field(min_length=1)
    labels: tuple[str, ...] = Field(min_length=1)
    person_label: str | None = Field(None, description="The label counted as a person.")
    thresholds: Thresholds
    licence: str
    source_package_licence: str | None = None
    provenance: dict[str, Any]
    nanodet: dict[str, Any] | None = None
    blazeface: dict[str, Any] | None = None
    yolo: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _family_block(self) -> ModelCard:
        if self.decoder != "yolo" and getattr(self, self.decoder) is None:
            raise ValueError(f"decoder {self.decoder!r} needs a '{self.decoder}:' section")
        if self.person_label is not None and self.person_label not in self.labels:
            raise ValueError(f"person_label {self.person_label!r} is not one of the labels")
        if self.task == "person" and self.person_label is None:
            raise ValueError("a person model needs person_label (which label is a person)")
        if self.decoder == "yolo":
            self._check_yolo_output()
        return self

    def _check_yolo_output(self) -> None:
        # [1, 4 (+1 objectness) + classes, N] or transposed: one dimension must be that width,
        # or the labels list does not describe this export.
        extra = 5 if (self.yolo or {}).get("objectness") else 4
        width = len(self.labels) + extra
        shape = self.outputs[0].shape
        if len(shape) != 3 or width not in shape[1:]:
            raise ValueError(f"yolo output {list(shape)} has no dimension of {width} "
                             f"({extra} box values + {len(self.labels)} labels)")


def load_card(path: Path) -> ModelCard:
    """Read and validate a model card; ModelRefused with the reason when it is unusable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ModelRefused(str(path), f"cannot read the card: {err}") from err
    try:
        return ModelCard.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "<card>"
        raise ModelRefused(str(path), f"{where}: {first['msg']}") from err


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_model(card_path: Path) -> tuple[ModelCard, Path]:
    """Load a card and check its .onnx (next to it) has the card's sha256; refuse otherwise."""
    card = load_card(card_path)
    model_path = card_path.parent / card.file
    try:
        actual = file_sha256(model_path)
    except OSError as err:
        raise ModelRefused(str(model_path), f"cannot read the model: {err}") from err
    if actual != card.sha256:
        raise ModelRefused(str(model_path),
                           f"sha256 {actual} differs from its card ({card.sha256}); refusing to load it")
    return card, model_path
