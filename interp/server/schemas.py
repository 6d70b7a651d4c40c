"""The JSON bodies of the API (FastAPI turns them into the OpenAPI schema at /openapi.json).
Unknown fields are refused, and no field names a file: the server reads only what it loaded at start."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class ActivationsRequest(BaseModel):
    model_config = STRICT
    prompt: str = Field(description="the text to read; BOS is put in front and never shown")
    feature: int | None = Field(None, description="also return this feature's value at every token")
    top_k: int = Field(8, ge=1, description="features listed per token, strongest first")


class SteerRequest(BaseModel):
    model_config = STRICT
    prompt: str = Field(description="the text to continue")
    features: list[int] = Field(min_length=1, description="the SAE features to edit, at every position")
    mode: Literal["add", "clamp", "ablate"] = Field("add", description="add strength to each feature's value, "
                                                    "clamp it to strength, or ablate it (set it to 0)")
    strength: float = Field(8.0, description="add: the amount; clamp: the value; ablate: unused")
    max_new_tokens: int = Field(20, ge=1)
    seed: int = Field(0, ge=0, le=2**31 - 1, description="both continuations sample from this seed")
    temperature: float = Field(1.0, ge=0, le=2, description="0 is greedy")
