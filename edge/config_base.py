"""Building blocks of the config models: strict base model, ids, secrets, located errors."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from edge.errors import SecretUnavailable

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def located(message: str, *path: str | int) -> ValueError:
    """Build a cross-field error that points at a key below the model raising it."""
    # Pydantic gives a model validator's error the model's own location; the config
    # loader reads this marker to point the installer at the exact key instead.
    dotted = ".".join(str(p) for p in path)
    return ValueError(f"[at {dotted}] {message}")


def _check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError(
            "must be 1-64 letters, digits, '_', '.', '-' starting with a letter or digit "
            "(it is used in MQTT topics, so no '/', '+', '#' or spaces)"
        )
    return value


Identifier = Annotated[str, AfterValidator(_check_id)]


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(StrictModel):
    """Where a secret comes from: an environment variable or a file, never the YAML."""

    password_env: str | None = Field(
        None, description="Name of the environment variable that holds the password."
    )
    password_file: Path | None = Field(
        None, description="Path of a file whose content (trailing newline stripped) is the password."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: object) -> object:
        if isinstance(data, dict) and "password" in data:
            raise located(
                "inline passwords are not allowed; use password_env or password_file",
                "password",
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        if self.password_env and self.password_file:
            raise located("set password_env or password_file, not both", "password_file")
        return self

    def resolve_password(self, where: str) -> str | None:
        """Read the password from its env var or file; None when none is configured."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise SecretUnavailable(where, f"environment variable {self.password_env} is not set")
            return value
        if self.password_file:
            try:
                return self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as err:
                raise SecretUnavailable(where, f"cannot read {self.password_file}: {err}") from err
        return None
