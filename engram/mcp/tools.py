"""The MCP tools: what each does, its arguments (engram.mcp.schemas), the scope it needs, and
its implementation — a call into the library, with the HTTP API's ownership rules and shared
helpers (engram.server.ownership, engram.server.grounding), returning the API's public shapes.

Tools run in a worker thread (the library is synchronous); each takes a :class:`Caller`: the
database, who is calling, and the answer model chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..analytics.kinds import searched
from ..errors import DocumentNotFound, InvalidInput
from ..server.ownership import acting_user, check_memory, state_namespace, state_prefix
from ..server.principal import Principal
from ..server.schemas import CollectionPublic, DocumentPublic, IngestReportPublic, SearchHit
from ..server.schemas_base import RequestModel
from ..server.schemas_memory import MemoryHitPublic, MemoryPublic, RecallHitPublic
from ..server.schemas_state import StateItemPublic
from ..state.types import namespace_of
from ..store.records import EventWrite
from . import schemas as s

if TYPE_CHECKING:
    from ..engine import Engram
    from ..providers.llms import LLM


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls a tool (their tenant, scopes and bound user), on which database, and the
    model chain that writes answers (None: extractive answers)."""

    db: Engram
    principal: Principal
    llm: LLM | None = None
    # Where the caller's analytics events go (the server's recorder); None: not recorded.
    events: Callable[[EventWrite], None] | None = None

    def record(self, kind: str, **fields: Any) -> None:
        """An analytics event of the caller, marked as coming through MCP."""
        if self.events is None:
            return
        data = {"via": "mcp", **fields.pop("data", {})}
        principal = self.principal
        self.events(
            EventWrite(principal.tenant, kind, key_id=principal.key_id, data=data, **fields)
        )


Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    title: str
    description: str
    arguments: type[RequestModel]
    scope: Literal["read", "write"]
    run: Callable[[Caller, Any], Result]
    destructive: bool = False
    idempotent: bool = True


def _user(caller: Caller, given: str | None) -> str:
    """The user a memory tool acts for: the one named (if the caller may act for them), else
    the one the connection is bound to."""
    principal = caller.principal
    if given is not None:
        return acting_user(principal, given)
    if principal.user_id is not None:
        return principal.user_id
    raise InvalidInput(
        "user_id is required: this connection is not bound to a user",
        hint="pass user_id, or bind the connection to one user (engram mcp --user ID,"
        " or an API key created with --user)",
    )


# -- collections and documents ------------------------------------------------------------------
def list_collections(caller: Caller, args: s.NoArguments) -> Result:
    items = caller.db.collections(tenant=caller.principal.tenant)
    data = [CollectionPublic.model_validate(c).model_dump(mode="json") for c in items]
    return {"data": data, "count": len(data)}


def search(caller: Caller, args: s.SearchArgs) -> Result:
    started = time.perf_counter()
    result = caller.db.search(
        args.query,
        collection=args.collection,
        k=args.k,
        mode=args.mode,
        where=args.where,
        rerank=args.rerank,
        group_by=args.group_by,
        tenant=caller.principal.tenant,
    )
    data = [SearchHit.of(r).model_dump(mode="json") for r in result.results]
    caller.record(
        "search",
        user_id=caller.principal.user_id,
        query=args.query,
        result_count=len(data),
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        data={**searched(args.collection), "mode": result.mode},
    )
    return {"data": data, "count": len(data), "mode": result.mode}


def ask(caller: Caller, args: s.AskArgs) -> Result:
    from ..answers import answer
    from ..server.grounding import ground

    principal = caller.principal
    user_id = acting_user(principal, args.user_id) if args.user_id else principal.user_id
    grounding = ground(
        caller.db,
        caller.llm,
        principal,
        args.question,
        [],
        collection=args.collection,
        user_id=user_id,
        k=args.k,
        mode=args.mode,
        where=args.where,
        record=False,
    )
    caller.record(
        "chat",
        user_id=user_id,
        query=args.question,
        result_count=len(grounding.passages),
        data=searched(args.collection),
    )
    result = answer(args.question, grounding.passages, caller.llm, **grounding.options)
    return {**result.to_dict(), "query": grounding.query}


def list_documents(caller: Caller, args: s.ListDocumentsArgs) -> Result:
    found = caller.db.documents(
        args.collection,
        limit=args.limit + 1,  # one more says whether there is a next page
        offset=args.offset,
        where=args.where,
        tenant=caller.principal.tenant,
    )
    page = found[: args.limit]
    data = [DocumentPublic.model_validate(d).model_dump(mode="json") for d in page]
    more = len(found) > args.limit
    return {
        "data": data,
        "count": len(data),
        "next_offset": args.offset + len(page) if more else None,
    }


def _add(caller: Caller, collection: str, record: dict[str, Any]) -> Result:
    from ..server.routes.documents import add_one

    report = add_one(caller.db, record, collection=collection, tenant=caller.principal.tenant)
    return IngestReportPublic.of(report).model_dump(mode="json")


def add_document(caller: Caller, args: s.AddDocumentArgs) -> Result:
    record = {"id": args.key, "text": args.text, "title": args.title, "metadata": args.metadata}
    return _add(caller, args.collection, {k: v for k, v in record.items() if v is not None})


def update_document(caller: Caller, args: s.UpdateDocumentArgs) -> Result:
    current = caller.db.document(args.key, args.collection, tenant=caller.principal.tenant)
    record = {
        "id": args.key,
        "text": args.text,
        "title": current.title if args.title is None else args.title,
        "metadata": current.metadata if args.metadata is None else args.metadata,
    }
    return _add(caller, args.collection, record)


def delete_document(caller: Caller, args: s.DeleteDocumentArgs) -> Result:
    if not caller.db.delete([args.key], collection=args.collection, tenant=caller.principal.tenant):
        raise DocumentNotFound(
            f"no document {args.key!r} in collection {args.collection!r}",
            hint="list_documents lists the collection's keys",
        )
    return {"deleted": args.key, "collection": args.collection}


# -- memories and conversations -----------------------------------------------------------------
def remember(caller: Caller, args: s.RememberArgs) -> Result:
    record = caller.db.memory.add(
        args.content,
        user_id=_user(caller, args.user_id),
        agent_id=args.agent_id,
        metadata=args.metadata,
        source="mcp",
        tenant=caller.principal.tenant,
    )
    return MemoryPublic.model_validate(record).model_dump(mode="json")


def search_memories(caller: Caller, args: s.SearchMemoriesArgs) -> Result:
    hits = caller.db.memory.search(
        args.query,
        user_id=_user(caller, args.user_id),
        agent_id=args.agent_id,
        k=args.k,
        tenant=caller.principal.tenant,
    )
    data = [MemoryHitPublic.model_validate(h.to_dict()).model_dump(mode="json") for h in hits]
    return {"data": data, "count": len(data)}


def recall(caller: Caller, args: s.RecallArgs) -> Result:
    hits = caller.db.memory.recall(
        args.query,
        user_id=_user(caller, args.user_id),
        k=args.k,
        conversation_id=args.conversation_id,
        since=args.since,
        until=args.until,
        context=args.context,
        mode=args.mode,
        tenant=caller.principal.tenant,
    )
    data = [RecallHitPublic.model_validate(h.to_dict()).model_dump(mode="json") for h in hits]
    return {"data": data, "count": len(data)}


def forget(caller: Caller, args: s.ForgetArgs) -> Result:
    check_memory(caller.db, caller.principal, args.memory_id)
    caller.db.memory.delete(args.memory_id, source="mcp", tenant=caller.principal.tenant)
    return {"forgotten": args.memory_id}


# -- agent state --------------------------------------------------------------------------------
def _state(item: Any) -> Result:
    return StateItemPublic(**item.to_dict()).model_dump(mode="json")


def get_state(caller: Caller, args: s.GetStateArgs) -> Result:
    namespace = state_namespace(caller.principal, namespace_of(args.namespace))
    return _state(caller.db.state.get(namespace, args.key, tenant=caller.principal.tenant))


def put_state(caller: Caller, args: s.PutStateArgs) -> Result:
    namespace = state_namespace(caller.principal, namespace_of(args.namespace))
    item = caller.db.state.put(
        namespace,
        args.key,
        args.value,
        if_version=args.if_version,
        ttl=args.ttl,
        index=args.index,
        tenant=caller.principal.tenant,
    )
    return _state(item)


def list_state(caller: Caller, args: s.ListStateArgs) -> Result:
    prefix = state_prefix(caller.principal, namespace_of(args.prefix, allow_empty=True))
    items = caller.db.state.items(
        prefix, limit=args.limit + 1, offset=args.offset, tenant=caller.principal.tenant
    )
    page = items[: args.limit]
    more = len(items) > args.limit
    return {
        "data": [_state(i) for i in page],
        "count": len(page),
        "next_offset": args.offset + len(page) if more else None,
    }


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            "list_collections",
            "List collections",
            "List the document collections you can search, with each one's language, embedding"
            " model and number of documents and chunks.",
            s.NoArguments,
            "read",
            list_collections,
        ),
        Tool(
            "search",
            "Search documents",
            "Search a collection of documents and return the best passages, best first: each"
            " with its document key, title, text, score, page and heading path. Use it to find"
            " facts in the user's documents; filter on document metadata with `where`.",
            s.SearchArgs,
            "read",
            search,
        ),
        Tool(
            "ask",
            "Answer from documents",
            "Answer a question from a collection, with numbered citations of the passages used"
            " (document key, version and character span). With a user, their memories and past"
            " conversations are drawn on too. Without a configured language model the answer"
            " quotes the best passages (extractive).",
            s.AskArgs,
            "read",
            ask,
        ),
        Tool(
            "list_documents",
            "List documents",
            "List the documents of a collection in key order, a page at a time (pass"
            " next_offset back as offset), each with its title, version and metadata. A"
            " document's text is the resource engram://collections/{collection}/documents/{key}.",
            s.ListDocumentsArgs,
            "read",
            list_documents,
        ),
        Tool(
            "add_document",
            "Add a document",
            "Add a document to a collection (created on first use), or replace the document"
            " of that key with a new version when its text changed. It is chunked, embedded"
            " and searchable at once.",
            s.AddDocumentArgs,
            "write",
            add_document,
        ),
        Tool(
            "update_document",
            "Update a document",
            "Replace the text of an existing document (a new version), keeping its title and"
            " metadata unless given. Fails if the collection has no document of that key.",
            s.UpdateDocumentArgs,
            "write",
            update_document,
        ),
        Tool(
            "delete_document",
            "Delete a document",
            "Delete a document, every version of it, from a collection and all its indexes.",
            s.DeleteDocumentArgs,
            "write",
            delete_document,
            destructive=True,
        ),
        Tool(
            "remember",
            "Remember",
            "Store a long-term memory about a user: a fact, preference or event worth knowing"
            " in later conversations. A near-identical memory of the same user and agent is"
            " updated instead (deduplicated: true).",
            s.RememberArgs,
            "write",
            remember,
            idempotent=False,
        ),
        Tool(
            "search_memories",
            "Search memories",
            "Search a user's long-term memories (keyword and meaning), best first, each with"
            " its id (for forget).",
            s.SearchMemoriesArgs,
            "read",
            search_memories,
        ),
        Tool(
            "recall",
            "Recall conversations",
            "Search a user's past conversations: the messages that best match, each with the"
            " turns around it, its conversation and time; narrow by conversation and by time"
            " (since ≤ time < until).",
            s.RecallArgs,
            "read",
            recall,
        ),
        Tool(
            "forget",
            "Forget a memory",
            "Delete one of a user's memories by id (search_memories gives the ids).",
            s.ForgetArgs,
            "write",
            forget,
            destructive=True,
        ),
        Tool(
            "get_state",
            "Get state",
            "Read an agent-state item: the JSON value stored under a key in a namespace, with"
            " its version.",
            s.GetStateArgs,
            "read",
            get_state,
        ),
        Tool(
            "put_state",
            "Put state",
            "Store a JSON value under a key in a namespace (agent state: plans, settings,"
            " progress), replacing the previous version; if_version makes it a compare-and-set.",
            s.PutStateArgs,
            "write",
            put_state,
        ),
        Tool(
            "list_state",
            "List state",
            "List the agent-state items under a namespace prefix (that namespace and the ones"
            " below it), by namespace and key, a page at a time.",
            s.ListStateArgs,
            "read",
            list_state,
        ),
    )
}
