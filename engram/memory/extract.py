"""Memories extracted from conversations by the configured LLM, in a background job.

A conversation created with ``extract_memories=True`` (metadata key ``extract_memories``;
``agent_id`` in its metadata scopes the memories to that agent) queues a job of kind
``memory.extract`` whenever user messages are appended to it, if an LLM is configured
(``ENGRAM_LLM``). The job:

1. reads the new messages, with the turns just before them for context;
2. finds the user's existing memories most similar to them (hybrid memory search);
3. asks the model, in one call, which facts about the user the messages state and what
   to do with each given those memories: ``add`` a new memory, ``update`` one (the fact
   changed or got more precise), ``delete`` one (the user retracted it), or nothing;
4. applies the decisions through :class:`~engram.memory.service.MemoryService`, so that every
   change is in the memory's history with its source ``conversation:<id>#<message ids>``,
   and adds are deduplicated as any add is.

The model's decisions are saved in the job's progress before any is applied, with how many
were applied so far: a retry (a crash, a lost lease) applies the remaining ones of the same
plan instead of asking the model again, so an extraction is applied once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput, MemoryNotFound
from . import validation as check
from .types import MemoryRecord, Message

if TYPE_CHECKING:
    from ..jobs.types import Job
    from ..providers.llms.base import LLM
    from .service import MemoryService

logger = logging.getLogger("engram.memory")

KIND = "memory.extract"
CONTEXT_TURNS = 4  # messages before the new ones shown to the model
RELATED = 10  # existing memories shown to the model
ACTIONS = ("add", "update", "delete")

_PROMPT = """\
You keep the long-term memory of an assistant about one user. From the new messages of \
the conversation, find the facts worth remembering about the user (their life, people, \
preferences, plans, work, possessions, health, dates), and decide what to do with the \
memories already kept.

Existing memories (may be outdated):
{memories}

Rules:
- "add" a fact that no existing memory holds. One short, self-contained sentence in the \
third person ("The user's sister is called Nora."), in the language of the conversation, \
with absolute dates when the messages make them clear.
- "update" a memory the messages change or make more precise: give its id and its new \
full wording.
- "delete" a memory the messages show to be false or retracted: give its id.
- Nothing for small talk, questions, the assistant's own suggestions, or facts already kept \
as they are.

Answer with JSON only, no prose: {{"operations": [{{"action": "add", "content": "..."}}, \
{{"action": "update", "id": "m2", "content": "..."}}, {{"action": "delete", "id": "m3"}}]}} \
— or {{"operations": []}}.
"""


def source_of(conversation_id: str, message_ids: Sequence[int]) -> str:
    """The provenance of an extracted change: the conversation and the message ids."""
    return f"conversation:{conversation_id}#{','.join(str(i) for i in message_ids)}"


def plan(
    llm: LLM,
    messages: Sequence[Message],
    context: Sequence[Message],
    related: Sequence[MemoryRecord],
) -> list[dict[str, str]]:
    """The model's decisions for the new ``messages`` (``context``: the turns before them;
    ``related``: the similar existing memories), validated: operations on memories not
    shown, unknown actions and empty contents are dropped."""
    refs = {f"m{i}": m.id for i, m in enumerate(related, 1)}
    shown = "\n".join(f"[m{i}] {m.content}" for i, m in enumerate(related, 1)) or "(none)"

    def line(m: Message) -> str:
        return f"{m.speaker or m.role} ({m.created_at[:10]}): {m.content}"

    earlier = "\n".join(line(m) for m in context) or "(none)"
    new = "\n".join(line(m) for m in messages)
    from ..providers.llms.base import ChatMessage

    reply = llm.complete(
        [
            ChatMessage("system", _PROMPT.format(memories=shown)),
            ChatMessage("user", f"Earlier turns:\n{earlier}\n\nNew messages:\n{new}"),
        ],
        temperature=0.0,
        max_tokens=800,
    )
    return _operations(reply, refs)


def _operations(reply: str, refs: dict[str, str]) -> list[dict[str, str]]:
    match = re.search(r"\{.*\}", reply, re.S)
    try:
        data = json.loads(match.group(0)) if match else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("operations"), list):
        raise InvalidInput(f"the model's extraction is not the JSON asked for: {reply[:200]!r}")
    out: list[dict[str, str]] = []
    for op in data["operations"]:
        if not isinstance(op, dict) or op.get("action") not in ACTIONS:
            logger.info("extraction: ignoring operation %r", op)
            continue
        action = str(op["action"])
        content = op.get("content")
        target = refs.get(str(op.get("id", "")))
        if action != "add" and target is None:
            logger.info("extraction: ignoring %s of an unknown memory %r", action, op.get("id"))
            continue
        if action != "delete" and (not isinstance(content, str) or not content.strip()):
            logger.info("extraction: ignoring %s without content", action)
            continue
        item = {"action": action}
        if target is not None:
            item["id"] = target
        if action != "delete":
            item["content"] = str(content).strip()[: check.MAX_CONTENT_CHARS]
        out.append(item)
    return out


def apply(
    memory: MemoryService,
    op: dict[str, str],
    *,
    tenant: str,
    user_id: str,
    agent_id: str | None,
    source: str,
) -> str:
    """Apply one decision; returns what happened (added, merged, updated, deleted, gone)."""
    try:
        if op["action"] == "add":
            record = memory.add(
                op["content"], user_id=user_id, agent_id=agent_id, source=source, tenant=tenant
            )
            return "merged" if record.deduplicated else "added"
        if op["action"] == "update":
            memory.update(op["id"], op["content"], source=source, tenant=tenant)
            return "updated"
        memory.delete(op["id"], source=source, tenant=tenant)
        return "deleted"
    except MemoryNotFound:  # deleted meanwhile (by the user, or an earlier attempt)
        return "gone"


def run(
    memory: MemoryService,
    llm: LLM | None,
    job: Job,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Run an extraction job: plan once (kept in the job's progress), apply what is left."""
    payload = job.payload or {}
    conversation_id = str(payload["conversation_id"])
    ids = [int(i) for i in payload["message_ids"]]
    tenant = job.tenant
    conversation = memory.conversation(conversation_id, tenant=tenant)
    agent = conversation.metadata.get("agent_id")
    agent_id = str(agent) if agent else None
    progress = dict(job.progress or {})
    operations = progress.get("operations")
    if operations is None:
        if llm is None:
            raise InvalidInput(
                "memory extraction needs a model", hint="set ENGRAM_LLM for the workers"
            )
        history = memory.messages(conversation_id, tenant=tenant)
        new = [m for m in history if m.id in set(ids)]
        if not new:
            return {"operations": [], "results": []}  # the messages were deleted meanwhile
        first = history.index(new[0])
        context = history[max(first - CONTEXT_TURNS, 0) : first]
        query = " ".join(m.content for m in new if m.role == "user")[
            : memory.settings.max_query_chars
        ]
        related = [
            h.memory
            for h in memory.search(
                query or new[-1].content[: memory.settings.max_query_chars],
                user_id=conversation.user_id,
                agent_id=agent_id,
                k=RELATED,
                tenant=tenant,
            )
        ]
        operations = plan(llm, new, context, related)
        progress = {"operations": operations, "applied": 0, "results": []}
        save(progress)
    source = source_of(conversation_id, ids)
    results = list(progress.get("results", []))
    for i in range(int(progress.get("applied", 0)), len(operations)):
        results.append(
            apply(
                memory,
                operations[i],
                tenant=tenant,
                user_id=conversation.user_id,
                agent_id=agent_id,
                source=source,
            )
        )
        progress = {"operations": operations, "applied": i + 1, "results": results}
        save(progress)
    return {"operations": operations, "results": results}
