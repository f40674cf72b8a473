"""What every JSON document the application sends is built from: a strict pydantic base and
the one way times are written.

Each surface declares its documents in its own ``schemas`` module (`app.intake.schemas` for the
upstream API, `app.review.schemas` for the reviewer API, `app.execution.schemas` for callbacks and
notifications; `app.cases.schemas` holds the shapes they share). A view or job builds the model
and sends ``model_dump(mode="json")``; the same models can feed an OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

# Written as ``datetime.isoformat()`` ("…+00:00", as the documents always were), not pydantic's "…Z".
IsoDateTime = Annotated[
    datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Document(BaseModel):
    """A JSON document we send: every member declared (``extra="forbid"``), readable from ORM
    objects whose attributes carry the same names (``from_attributes``)."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)
