"""The arguments of each MCP tool, as request models: a tool's ``inputSchema`` is its model's
JSON schema, and its arguments are validated by the model, with the rules of the HTTP API's
bodies (unknown fields and text that is not valid Unicode are refused) and its limits."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..answers.grounding import MAX_PASSAGES, PASSAGES_HELP
from ..server.schemas import MAX_QUERY_CHARS
from ..server.schemas_base import RequestModel

Mode = Literal["hybrid", "keyword", "vector"]

COLLECTION = Field(
    "default", min_length=1, max_length=200, description="Collection name (list_collections)."
)
MODE: Any = Field(  # Any: the default is one of Mode's values
    "hybrid",
    description="hybrid: keyword (BM25) and vector results fused, best for most questions;"
    " keyword: exact words, names, codes; vector: meaning, paraphrases.",
)
SEARCHED: Any = Field(  # Any: a name or a list of names
    "default",
    description="Collection to search (list_collections), a list of them searched as one"
    ' ranking (each hit names its collection), or "*" for every collection.',
)
WHERE = Field(
    None,
    description='Metadata filter on the documents, e.g. {"team": "hr"}, {"year": {"$gte": 2020}},'
    ' {"lang": {"$in": ["en", "fr"]}}; operators $eq $ne $gt $gte $lt $lte $in $nin $exists'
    " $contains, combined with $and / $or.",
)
USER = Field(
    None,
    min_length=1,
    max_length=200,
    description="Whose memories and conversations: by default the user this connection is"
    " bound to (engram mcp --user, or an API key created with --user).",
)
KEY = Field(min_length=1, max_length=1024, description="Document key, unique in its collection.")
NAMESPACE = Field(
    min_length=1,
    max_length=2000,
    description="Namespace path, labels separated by '/', e.g. user/42/planner.",
)
STATE_KEY = Field(min_length=1, max_length=1024, description="Key within the namespace (no '/').")


class NoArguments(RequestModel):
    pass


class SearchArgs(RequestModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for.")
    collection: str | list[str] = SEARCHED
    mode: Mode = MODE
    k: int = Field(10, ge=1, le=50, description="Number of passages to return.")
    where: dict[str, Any] | None = WHERE
    rerank: bool = Field(
        False, description="Rescore the top passages with the cross-encoder (slower, sharper)."
    )
    group_by: Literal["document"] | None = Field(
        None, description='"document": one passage per document, its best one.'
    )


class AskArgs(RequestModel):
    question: str = Field(min_length=1, max_length=4096, description="The question to answer.")
    collection: str | list[str] = SEARCHED
    mode: Mode = MODE
    k: int | None = Field(None, ge=1, le=MAX_PASSAGES, description=PASSAGES_HELP)
    where: dict[str, Any] | None = WHERE
    user_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Also draw on this user's memories and past conversations (default: the"
        " user this connection is bound to, if any).",
    )


class ListDocumentsArgs(RequestModel):
    collection: str = COLLECTION
    limit: int = Field(50, ge=1, le=1000, description="Documents per page.")
    offset: int = Field(0, ge=0, description="Documents to skip (key order).")
    where: dict[str, Any] | None = WHERE


class AddDocumentArgs(RequestModel):
    collection: str = COLLECTION
    key: str = KEY
    text: str = Field(min_length=1, description="The document's full text.")
    title: str | None = Field(None, max_length=1000)
    metadata: dict[str, Any] | None = Field(
        None, description="JSON object of filterable fields (search's where)."
    )


class UpdateDocumentArgs(RequestModel):
    collection: str = COLLECTION
    key: str = KEY
    text: str = Field(min_length=1, description="The document's new full text.")
    title: str | None = Field(None, max_length=1000, description="Default: keep the current.")
    metadata: dict[str, Any] | None = Field(
        None, description="Replaces the metadata; default: keep the current."
    )


class DeleteDocumentArgs(RequestModel):
    collection: str = COLLECTION
    key: str = KEY


class RememberArgs(RequestModel):
    content: str = Field(
        min_length=1, max_length=10_000, description="The fact, preference or event to keep."
    )
    user_id: str | None = USER
    agent_id: str | None = Field(None, max_length=200, description="The agent it belongs to.")
    metadata: dict[str, Any] | None = None


class SearchMemoriesArgs(RequestModel):
    query: str = Field(min_length=1, max_length=4096)
    user_id: str | None = USER
    agent_id: str | None = Field(None, max_length=200, description="Only this agent's memories.")
    k: int = Field(10, ge=1, le=100)


class RecallArgs(RequestModel):
    query: str = Field(min_length=1, max_length=10_000, description="What was said.")
    user_id: str | None = USER
    k: int = Field(5, ge=1, le=100, description="Messages to return.")
    conversation_id: str | None = Field(None, min_length=1, max_length=200)
    since: str | None = Field(None, max_length=64, description="ISO 8601: messages from then on.")
    until: str | None = Field(None, max_length=64, description="ISO 8601: messages before then.")
    context: int = Field(1, ge=0, le=20, description="Turns returned before and after each hit.")
    mode: Mode = MODE


class ForgetArgs(RequestModel):
    memory_id: str = Field(min_length=1, max_length=200, description="The memory's id.")


class GetStateArgs(RequestModel):
    namespace: str = NAMESPACE
    key: str = STATE_KEY


class PutStateArgs(RequestModel):
    namespace: str = NAMESPACE
    key: str = STATE_KEY
    value: Any = Field(description="Any JSON value.")
    ttl: float | None = Field(None, gt=0, description="Seconds until the item expires.")
    if_version: int | None = Field(
        None,
        ge=0,
        description="Compare-and-set: write only if the item is at this version (0: only if"
        " it does not exist yet).",
    )
    index: list[str] | None = Field(
        None, max_length=32, description="Fields of a JSON object to embed for semantic search."
    )


class ListStateArgs(RequestModel):
    prefix: str = Field(
        "", max_length=2000, description="Namespace prefix, e.g. user/42 (empty: every item)."
    )
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0)


def input_schema(model: type[RequestModel]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments: the model's, without pydantic's titles."""
    return _untitled(model.model_json_schema())


def _untitled(node: Any) -> Any:
    if isinstance(node, list):
        return [_untitled(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):  # names, not keywords
            out[key] = {name: _untitled(schema) for name, schema in value.items()}
        else:
            out[key] = _untitled(value)
    return out
