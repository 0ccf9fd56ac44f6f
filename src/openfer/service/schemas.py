"""Pydantic models of the API's answers; they mirror ``ImageResult.to_dict()`` (the CLI's JSON Lines) and the video
run."""

from __future__ import annotations

from enum import Enum
from typing import Optional

from pydantic import BaseModel, Field


class FaceOut(BaseModel):
    """One face, as in the CLI's JSON Lines (``openfer.Face.to_dict``)."""

    face: int = Field(description="index of the face in the image, from 0 (highest detection confidence first)")
    box: list[float] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2 in pixels of the image")
    confidence: float = Field(description="detector confidence, 0..1")
    landmarks: Optional[list[list[float]]] = Field(
        description="5 x [x, y] pixels: left eye, right eye, nose, mouth left, mouth right; null when unknown")
    expression: Optional[str] = Field(description="most probable class")
    probabilities: dict[str, float] = Field(description="class -> probability, summing to 1")
    face_id: Optional[int] = Field(default=None, description="stable id of this person, from 0 (webcam stream "
                                                             "only)")
    damage: Optional[dict[str, float]] = Field(
        default=None, description="clean, eyes, mouth, detail -> probability that the face is clear, covered over "
                                  "the eyes, covered over the mouth or low in detail (models with a damage probe, "
                                  "such as default-soft; absent otherwise)")


class ExplanationOut(BaseModel):
    """Why the model gave a face its probabilities (``openfer.Explanation.to_dict``, docs/explain.md)."""

    method: str = Field(description="occlusion, rise, gradcam or gradcam++")
    target: str = Field(description="the class explained")
    probability: float = Field(description="the model's probability of the target class")
    regions: dict[str, float] = Field(description="share of the positive evidence in brows_eyes, nose, mouth_jaw, "
                                                  "other; sums to 1, or all 0 when nothing raised the probability")
    region_areas: dict[str, float] = Field(description="share of the crop's pixels in each region")
    rationale: str = Field(description="one sentence built only from the shares and the probability")
    crop_to_image: list[list[float]] = Field(description="2 x 3 matrix from crop pixels to image pixels")
    heatmap: Optional[list[list[float]]] = Field(default=None, description="S x S map over the aligned crop; "
                                                                           "left out with heatmap=false")


class ExplainedFaceOut(FaceOut):
    """A face with its explanation."""

    explanation: Optional[ExplanationOut] = Field(description="null for a face beyond the server's "
                                                              "max_explain_faces or its time budget (see notes)")


class AnalyzeOut(BaseModel):
    """Faces in one image."""

    width: int = Field(description="image width in pixels (after EXIF rotation)")
    height: int
    num_faces: int
    faces: list[FaceOut] = Field(description="highest detection confidence first; [] when there is no face")
    detect_sides: Optional[list[int]] = Field(default=None, description="longer side (pixels) of each pass the face "
                                                                        "detector made, coarsest first")
    model: str = Field(description="expression model that classified the faces")
    seconds: float = Field(description="time spent decoding and analysing, seconds")


class ModelOut(BaseModel):
    """A registered expression model."""

    name: str
    classes: list[str]
    input_size: int = Field(description="network input side, pixels")
    channels: int = Field(description="1 = grey, 3 = RGB")
    params: int
    description: str
    metrics: dict[str, float] = Field(description="measured numbers from the model card")
    licence: str
    active: bool = Field(description="whether this service uses it")


class ModelsOut(BaseModel):
    """The models this installation has and the one the service runs."""

    active: str
    detector: str
    models: list[ModelOut]


class JobState(str, Enum):
    """Where a video job is."""

    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class ResultKind(str, Enum):
    """The files a finished job offers."""

    csv = "csv"
    jsonl = "jsonl"
    summary = "summary"
    video = "video"
    report = "report"


class JobOut(BaseModel):
    """A video job and its progress."""

    id: str
    state: JobState
    created: float = Field(description="Unix time the job was accepted")
    started: Optional[float] = None
    finished: Optional[float] = None
    frames: int = Field(description="frames analysed so far")
    expected_frames: Optional[int] = Field(description="frames the job will analyse, when the container says")
    progress: Optional[float] = Field(description="frames / expected_frames, 0..1; null when unknown")
    faces: int
    tracks: int = Field(description="distinct people tracked so far")
    problems: list[str] = Field(description="frames that could not be read or analysed")
    error: Optional[str] = Field(description="why the job failed (state 'failed')")
    results: dict[str, str] = Field(description="result kind -> URL, once the job is done")
    expires: Optional[float] = Field(description="Unix time the job and its files are deleted")


class StatusOut(BaseModel):
    """Liveness or readiness."""

    status: str
    detail: Optional[str] = None


class ErrorOut(BaseModel):
    """Every error answer: a sentence that says what went wrong and what to do."""

    detail: str


class ExplainOut(AnalyzeOut):
    """Faces in one image, each with an explanation."""

    faces: list[ExplainedFaceOut] = Field(description="highest detection confidence first; [] when there is no "
                                                      "face")
    explained: int = Field(description="faces with an explanation: the largest first, at most the server's "
                                       "max_explain_faces, and those done within its time budget")
    notes: list[str] = Field(description="why some faces have no explanation; [] when all have one")
