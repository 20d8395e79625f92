"""The chat page: ask a collection questions, read answers with numbered citations that open
the cited passage, come back to earlier conversations and rate answers.

Asking is streamed by ``static/chat.js`` straight from ``POST /v1/chat`` (the same route any
API client uses, with the session cookie and its CSRF header), so a page and a program get the
same answer; without JavaScript the form posts here and the answer is computed by that same
route's function, whole. The answer's citations are kept in its message's metadata (the chat
route stores them), which is how a reopened conversation still links every [n] to its source.

Conversations belong to a user (engram.server.ownership). A caller bound to one user sees and
starts that user's conversations only, exactly as in the API. A tenant-wide caller (an admin
key, say) has no user of its own: its web conversations belong to the user ``web:<key id>``
(``web:jwt:<subject>`` for a token, ``web`` without authentication), so each person signed in
keeps their own list, and it may still open any conversation of the tenant by its address, as
the API lets it.

Feedback (👍/👎) is an analytics event of kind ``feedback`` (``rating`` "up" or "down", the
conversation, the message and the collection), recorded by this server after checking that the
message is an answer in a conversation the caller may reach, the way engram records its own
kinds; the dashboard counts those events.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from ...errors import ConversationNotFound, InvalidInput, NotFound
from ...memory.types import Conversation, Message
from ...server.deps import DB
from ...server.ownership import owns
from ...server.routes.chat import ChatRequest
from ...server.routes.chat import chat as chat_route
from ...store.records import EventWrite
from ..auth import Caller, WebCaller, require
from ..render import WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 50  # conversations listed per page
MESSAGES_SHOWN = 200  # the most recent messages of a conversation shown
TITLE_CHARS = 80  # a new conversation is titled with the start of its first question
RATINGS = ("up", "down")
MAX_ID = 200

# "[2]", "[1, 3]", "[^1]": citation markers, as the answers module reads them; "[1](url)" is
# a Markdown link, not a marker.
_MARKER = re.compile(r"\[\^?(\d+(?:\s*[,;]\s*\^?\d+)*)\](?!\()")
_NUMBER = re.compile(r"\d+")


def web_user(caller: WebCaller) -> str:
    """The user whose conversations the caller lists and starts (see the module's doc)."""
    principal = caller.principal
    if principal.user_id is not None:
        return principal.user_id
    return f"web:{principal.key_id}" if principal.key_id else "web"


def citation_href(citation: dict[str, Any], collection: str) -> str | None:
    """Where a citation opens: a document's passage in the source viewer, an earlier
    conversation's turn in this page; a memory has no page of its own."""
    kind = citation.get("kind") or "document"
    document = str(citation.get("document", ""))
    if kind == "document":
        where = citation.get("collection") or collection
        span = citation.get("span") or [0, 0]
        return (
            f"/source/{quote(str(where), safe='')}/{quote(document, safe='')}"
            f"?version={int(citation.get('version') or 1)}"
            f"&start={int(span[0])}&end={int(span[1])}"
        )
    if kind == "conversation":
        anchor = f"#m-{int(citation['message_id'])}" if citation.get("message_id") else ""
        return f"/chat/{quote(document, safe='')}{anchor}"
    return None


def segments(text: str, links: dict[int, str | None]) -> list[tuple[str, str | None, int]]:
    """The answer as (text, href, n) pieces: each number of a marker that names a citation
    becomes its own ``[n]`` piece (href None for a citation without a page, n 0 for plain
    text), so the template links it without ever marking up the model's text."""
    pieces: list[tuple[str, str | None, int]] = []
    position = 0
    for match in _MARKER.finditer(text):
        numbers = [int(n) for n in _NUMBER.findall(match.group(1))]
        if not any(n in links for n in numbers):
            continue
        pieces.append((text[position : match.start()], None, 0))
        for n in numbers:
            pieces.append((f"[{n}]", links.get(n), n if n in links else 0))
        position = match.end()
    pieces.append((text[position:], None, 0))
    return [p for p in pieces if p[0]]


def _view(message: Message, collection: str) -> dict[str, Any]:
    """What the template shows of one message: its pieces and, for an answer, its sources."""
    meta = message.metadata or {}
    raw = meta.get("citations") if message.role == "assistant" else None
    citations = [c for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
    shown: list[dict[str, Any]] = []
    for c in citations:
        try:
            href = citation_href(c, collection)
        except (KeyError, TypeError, ValueError):
            href = None
        shown.append(
            {
                "n": int(c.get("n") or 0),
                "href": href,
                "label": c.get("title") or c.get("document") or "",
                "kind": c.get("kind") or "document",
                "page": c.get("page"),
            }
        )
    links: dict[int, str | None] = {c["n"]: c["href"] for c in shown}
    return {
        "id": message.id,
        "role": message.role,
        "created_at": message.created_at,
        "pieces": segments(message.content, links) if shown else [(message.content, None, 0)],
        "citations": shown,
        "extractive": bool(meta.get("extractive")),
    }


def _reachable(db: DB, caller: WebCaller, conversation_id: str) -> Conversation:
    """The conversation, if the caller may open it; another user's looks missing (404)."""
    if not conversation_id or len(conversation_id) > MAX_ID:
        raise ConversationNotFound(f"no conversation {conversation_id[:MAX_ID]!r}")
    principal = caller.principal
    conversation = db.memory.conversation(conversation_id, tenant=principal.tenant)
    if not owns(principal, conversation.user_id):
        raise ConversationNotFound(f"no conversation {conversation_id!r}")
    return conversation


def _render(
    request: Request,
    caller: WebCaller,
    db: DB,
    *,
    conversation: Conversation | None,
    collection: str | None,
    page_number: int,
    rated: str | None = None,
) -> Response:
    tenant = caller.principal.tenant
    user = web_user(caller)
    names = [c.name for c in db.collections(tenant=tenant)]
    if collection is None and conversation is not None:
        remembered = conversation.metadata.get("collection")
        collection = remembered if isinstance(remembered, str) else None
    chosen = collection or (names[0] if names else "default")
    if chosen not in names:
        names.insert(0, chosen)  # a collection not (yet) created still shows as chosen
    listed = db.memory.conversations(
        user, limit=PAGE_SIZE + 1, offset=page_number * PAGE_SIZE, tenant=tenant
    )
    messages: list[dict[str, Any]] = []
    if conversation is not None:
        found = db.memory.messages(conversation.id, last=MESSAGES_SHOWN, tenant=tenant)
        messages = [_view(m, chosen) for m in found]
    t = caller.t
    title = (conversation.title or t("chat.untitled")) if conversation else t("chat.new")
    return page(
        request,
        caller,
        "chat/chat.html",
        title=title,
        conversation=conversation,
        conversations=listed[:PAGE_SIZE],
        page_number=page_number,
        more=len(listed) > PAGE_SIZE,
        messages=messages,
        collections=names,
        collection=chosen,
        user=user,
        can_ask=caller.can("write"),
        rated=rated if rated in RATINGS else None,
    )


@router.get("/chat")
def chat_home(
    request: Request,
    caller: Caller,
    db: DB,
    collection: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    page_number: Annotated[int, Query(alias="page", ge=0, le=100_000)] = 0,
) -> Response:
    """A new conversation: the question box, and the caller's conversations to reopen."""
    require(caller, "read")
    return _render(
        request, caller, db, conversation=None, collection=collection, page_number=page_number
    )


@router.get("/chat/{conversation_id}")
def chat_conversation(
    request: Request,
    caller: Caller,
    db: DB,
    conversation_id: str,
    collection: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    page_number: Annotated[int, Query(alias="page", ge=0, le=100_000)] = 0,
    rated: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """One conversation's messages, each answer with its citations; asking continues it."""
    require(caller, "read")
    conversation = _reachable(db, caller, conversation_id)
    return _render(
        request,
        caller,
        db,
        conversation=conversation,
        collection=collection,
        page_number=page_number,
        rated=rated,
    )


@router.post("/chat")
def ask(
    request: Request,
    caller: Caller,
    db: DB,
    question: Annotated[str, Form(max_length=4096)] = "",
    collection: Annotated[str, Form(max_length=200)] = "default",
    conversation_id: Annotated[str, Form(max_length=MAX_ID)] = "",
) -> Response:
    """Asking without JavaScript: the whole answer from the chat route, appended to the
    conversation (a new one for a first question), then the conversation's page."""
    require(caller, "write")
    question = question.strip()
    if not question:
        raise InvalidInput("type a question first")
    collection = collection.strip() or "default"
    tenant = caller.principal.tenant
    if conversation_id:
        conversation = _reachable(db, caller, conversation_id)
    else:
        conversation = db.memory.create_conversation(
            web_user(caller),
            title=question[:TITLE_CHARS],
            metadata={"collection": collection},
            tenant=tenant,
        )
    body = ChatRequest.model_validate(
        {"question": question, "collection": collection, "conversation_id": conversation.id}
    )
    chat_route(body, request, db, caller.principal)
    last = db.memory.messages(conversation.id, last=1, tenant=tenant)
    anchor = f"#m-{last[0].id}" if last else ""
    target = f"/chat/{quote(conversation.id, safe='')}?collection={quote(collection, safe='')}"
    return RedirectResponse(target + anchor, status_code=303)


@router.post("/chat/feedback")
async def feedback(request: Request, caller: Caller, db: DB) -> Response:
    """👍 or 👎 on an answer: a ``feedback`` event. JSON from chat.js (answered with JSON),
    or the buttons' form without JavaScript (answered with the conversation's page)."""
    require(caller, "read")
    is_json = request.headers.get("content-type", "").startswith("application/json")
    if is_json:
        try:
            sent = await request.json()
        except ValueError as exc:
            raise InvalidInput("the feedback is not JSON") from exc
        fields = sent if isinstance(sent, dict) else {}
    else:
        fields = dict(await request.form())
    rating, conversation_id, message_id = await run_in_threadpool(
        _record_feedback, request, caller, db, fields
    )
    if is_json:
        return JSONResponse({"recorded": True, "rating": rating}, status_code=202)
    target = f"/chat/{quote(conversation_id, safe='')}?rated={rating}#m-{message_id}"
    return RedirectResponse(target, status_code=303)


def _record_feedback(
    request: Request, caller: WebCaller, db: DB, fields: dict[str, Any]
) -> tuple[str, str, int]:
    """Check the feedback and record its event; (rating, conversation id, message id)."""
    rating = str(fields.get("rating", ""))
    conversation_id = str(fields.get("conversation_id", ""))
    collection = str(fields.get("collection", ""))[:200] or None
    try:
        message_id = int(str(fields.get("message_id", "")))
    except ValueError as exc:
        raise InvalidInput("message_id must be a message's number") from exc
    if rating not in RATINGS:
        raise InvalidInput(f"rating must be one of: {', '.join(RATINGS)}")
    conversation = _reachable(db, caller, conversation_id)
    if not _is_answer(db, conversation, message_id):
        raise NotFound(f"no answer {message_id} in conversation {conversation_id!r}")
    principal = caller.principal
    event = EventWrite(
        principal.tenant,
        "feedback",
        user_id=conversation.user_id,
        key_id=principal.key_id,
        data={
            "rating": rating,
            "conversation_id": conversation.id,
            "message_id": message_id,
            "collection": collection,
        },
    )
    observability = getattr(request.app.state, "observability", None)
    if observability is not None and observability.events is not None:
        observability.record(event)  # written in the background, as the API's events are
    else:
        db.analytics.record([event])
    return rating, conversation.id, message_id


def _is_answer(db: DB, conversation: Conversation, message_id: int) -> bool:
    """Whether ``message_id`` is an assistant message among the conversation's last
    MESSAGES_SHOWN (bounded: the answers a page shows are the ones rated)."""
    recent = db.memory.messages(conversation.id, last=MESSAGES_SHOWN, tenant=conversation.tenant)
    return any(m.id == message_id and m.role == "assistant" for m in recent)
