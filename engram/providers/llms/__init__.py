"""Chat models: the :class:`LLM` interface, OpenAI-compatible and Ollama providers, fallback
chains, and :func:`get_llm` / :func:`llm_chain` to build them from spec strings.

Importing this package does not import httpx; building a model does.
"""

from engram.providers.llms.base import LLM, ChatMessage, Reply, TokenStream
from engram.providers.llms.errors import LLMError, LLMUnavailable
from engram.providers.llms.factory import PRESETS, LLMSpec, get_llm, llm_chain, parse_spec

__all__ = [
    "LLM",
    "PRESETS",
    "ChatMessage",
    "LLMError",
    "LLMSpec",
    "LLMUnavailable",
    "Reply",
    "TokenStream",
    "get_llm",
    "llm_chain",
    "parse_spec",
]
