"""The base of every request body: one rule for all routes.

- A field the schema does not name is refused (422 naming it), not silently ignored: a
  misspelt ``metdata`` must not drop the metadata.
- Text that is not valid Unicode (a lone surrogate such as ``"\\ud800"``, which JSON can
  spell but UTF-8 cannot encode) is refused with a 422 naming the field, before it reaches
  hashing, storage or a model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from ..unicode import describe, lone_surrogate


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        bad = lone_surrogate(data)
        if bad is not None:
            raise ValueError(describe(bad))
        return data
