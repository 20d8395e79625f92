"""Follow-up questions made standalone before retrieval.

"Et combien par mois ?" retrieves nothing useful on its own: it only means something after
the turns before it. With an LLM configured, :func:`rewrite_with_llm` asks it for the
standalone question. Without one, :func:`rewrite_heuristic` applies a documented rule:

    the query is the question, followed by the content words of the last two turns of
    the conversation (the user's question and the reply it follows up on) that the
    question does not already contain, most recent first, at most ``MAX_ADDED`` of them.

Words are compared by the collection's analyzer (stemmed, stop words dropped), so "the
vet" in the history adds "vet" but never "the". The added words widen the keyword leg to
the subject under discussion and pull the query's vector toward it; the question's own
words stay first. The gain of each is measured on the development set's follow-up
questions (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..search.analyzer import get_analyzer

if TYPE_CHECKING:
    from ..providers.llms.base import LLM

MAX_ADDED = 12  # most history words added to a question
TURNS = 2  # how many of the last turns are read
_WORD = re.compile(r"\w[\w'’-]*", re.UNICODE)


def rewrite_heuristic(question: str, history: Sequence[tuple[str, str]], language: str) -> str:
    """``question`` followed by the salient words of the last turns of ``history`` ((role,
    text) pairs, oldest first) that it lacks; the question alone when there is no history."""
    if not history:
        return question
    analyzer = get_analyzer(language)
    have = set(analyzer.query_terms(question))
    added: list[str] = []
    for _role, text in reversed(history[-TURNS:]):
        for word in _WORD.findall(text):
            terms = analyzer.query_terms(word)
            if not terms or any(t in have for t in terms):
                continue
            have.update(terms)
            added.append(word)
            if len(added) >= MAX_ADDED:
                return f"{question} {' '.join(added)}"
    return f"{question} {' '.join(added)}" if added else question


_PROMPT = (
    "Rewrite the user's last question so that it can be understood without the conversation:"
    " resolve pronouns and ellipses with the names and subjects of the conversation. Keep its"
    " language. Answer with the rewritten question only, nothing else."
)


def rewrite_with_llm(llm: LLM, question: str, history: Sequence[tuple[str, str]]) -> str:
    """The standalone form of ``question`` written by ``llm``; the question itself when there
    is no history or the LLM answers with nothing usable."""
    if not history:
        return question
    from ..providers.llms.base import ChatMessage

    lines = "\n".join(f"{role}: {text}" for role, text in history[-6:])
    messages = [
        ChatMessage("system", _PROMPT),
        ChatMessage("user", f"Conversation:\n{lines}\n\nLast question: {question}"),
    ]
    answer = llm.complete(messages, max_tokens=120, temperature=0.0).strip().strip('"').strip()
    if not answer or len(answer) > 4 * len(question) + 200:
        return question
    return answer.splitlines()[0]
