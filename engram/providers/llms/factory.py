"""Chat models by spec string, resolved lazily: httpx is imported only when a model is built.

A spec is ``PROVIDER:MODEL[@BASE_URL][#KEY_ENV]``:

=========  ==============================  =====================  ======================
provider   protocol and default base URL   key read from          example
=========  ==============================  =====================  ======================
openai     OpenAI, api.openai.com/v1       ``OPENAI_API_KEY``     ``openai:gpt-4o-mini``
deepseek   OpenAI, api.deepseek.com/v1     ``DEEPSEEK_API_KEY``   ``deepseek:deepseek-chat``
vllm       OpenAI, 127.0.0.1:8000/v1       (none)                 ``vllm:Qwen/Qwen2.5-7B-Instruct``
llamacpp   OpenAI, 127.0.0.1:8080/v1       (none)                 ``llamacpp:local``
ollama     Ollama, 127.0.0.1:11434         (none)                 ``ollama:llama3.2:3b``
=========  ==============================  =====================  ======================

- ``MODEL`` is everything after the first ``:`` (Ollama tags keep their own ``:``).
- ``@BASE_URL`` points the provider's protocol at another server:
  ``openai:my-model@http://gpu-box:8000/v1`` is any OpenAI-compatible server.
- ``#KEY_ENV`` names the environment variable holding that endpoint's API key:
  ``openai:deepseek-chat@https://api.deepseek.com/v1#DEEPSEEK_API_KEY``. A spec never holds
  a key itself, so specs can be logged and shown.
- A provider's own key variable is used only with its default base URL: ``OPENAI_API_KEY`` is
  never sent to a server named by ``@BASE_URL`` unless ``#OPENAI_API_KEY`` says so.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engram.errors import ConfigError, MissingDependency
from engram.providers.llms.base import LLM


@dataclass(frozen=True, slots=True)
class Preset:
    """What a provider name stands for."""

    protocol: Literal["openai", "ollama"]
    base_url: str
    key_env: str | None = None


PRESETS: Mapping[str, Preset] = {
    "openai": Preset("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "deepseek": Preset("openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "vllm": Preset("openai", "http://127.0.0.1:8000/v1"),
    "llamacpp": Preset("openai", "http://127.0.0.1:8080/v1"),
    "ollama": Preset("ollama", "http://127.0.0.1:11434"),
}

_KEY_ENV = re.compile(r"#([A-Za-z_][A-Za-z0-9_]*)$")
_BASE_URL = re.compile(
    r"@(?=https?://)"
)  # a model name may contain "@"; a URL starts with a scheme
_FORMAT_HINT = "use PROVIDER:MODEL[@BASE_URL][#KEY_ENV], e.g. ollama:llama3.2 or openai:gpt-4o-mini"


@dataclass(frozen=True, slots=True)
class LLMSpec:
    """A parsed spec; ``base_url`` is None for the provider's default."""

    provider: str
    model: str
    base_url: str | None = None
    key_env: str | None = None


def parse_spec(spec: str) -> LLMSpec:
    """Split ``PROVIDER:MODEL[@BASE_URL][#KEY_ENV]``; raises ConfigError naming the problem."""
    text = spec.strip()
    key_env = None
    if match := _KEY_ENV.search(text):
        key_env, text = match.group(1), text[: match.start()]
    provider, sep, rest = text.partition(":")
    provider = provider.strip().lower()
    if not sep or provider not in PRESETS:
        raise ConfigError(
            f"unknown LLM spec {spec!r}: provider must be one of {', '.join(PRESETS)}",
            hint=_FORMAT_HINT,
        )
    parts = _BASE_URL.split(rest, maxsplit=1)
    model, base_url = parts[0].strip(), parts[1].strip() if len(parts) > 1 else ""
    if not model:
        raise ConfigError(f"LLM spec {spec!r} names no model", hint=_FORMAT_HINT)
    return LLMSpec(provider, model, base_url or None, key_env)


def get_llm(spec: str, **opts: Any) -> LLM:
    """A chat model from a spec (see the module docstring). ``opts`` go to the provider's
    constructor: ``api_key`` (overrides the key lookup), ``timeout``, ``connect_timeout``,
    ``retries``, ``backoff``, ``client``/``transport`` (tests), ``options`` (Ollama only,
    ignored by the others), ``max_tokens_param`` (OpenAI protocol only)."""
    parsed = parse_spec(spec)
    preset = PRESETS[parsed.provider]
    if "api_key" not in opts:
        opts["api_key"] = api_key(parsed, preset)
    if importlib.util.find_spec("httpx") is None:  # pragma: no cover - depends on the install
        raise MissingDependency("the LLM providers need httpx", hint='pip install "engram[llm]"')
    opts.setdefault("base_url", parsed.base_url or preset.base_url)
    # Protocol-specific options apply to the links that understand them, so one set of
    # options can configure a mixed chain.
    opts.pop("max_tokens_param" if preset.protocol == "ollama" else "options", None)
    if preset.protocol == "ollama":
        from engram.providers.llms.ollama import OllamaLLM

        return OllamaLLM(parsed.model, name=parsed.provider, **opts)
    from engram.providers.llms.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM(parsed.model, name=parsed.provider, **opts)


def llm_chain(specs: str | Sequence[str], **opts: Any) -> LLM:
    """One model, or a :class:`~engram.providers.llms.fallback.FallbackLLM` over several, from
    a list of specs or one comma-separated string (``"openai:gpt-4o-mini, ollama:llama3.2"``).
    ``opts`` go to every model; ``api_key`` is refused here, since one key sent to every
    endpoint of a chain would leak it: give each spec its ``#KEY_ENV`` instead."""
    if "api_key" in opts:
        raise ConfigError(
            "llm_chain does not take api_key: it would be sent to every model of the chain",
            hint="name each endpoint's key variable in its spec: openai:MODEL@URL#MY_KEY_VAR",
        )
    items = [s.strip() for s in (specs.split(",") if isinstance(specs, str) else specs)]
    items = [s for s in items if s]
    if not items:
        raise ConfigError(
            "no LLM spec given", hint="leave the LLM unset for extractive answers; " + _FORMAT_HINT
        )
    llms = [get_llm(item, **opts) for item in items]
    if len(llms) == 1:
        return llms[0]
    from engram.providers.llms.fallback import FallbackLLM

    return FallbackLLM(llms)


def api_key(spec: LLMSpec, preset: Preset) -> str | None:
    if spec.key_env:
        key = os.environ.get(spec.key_env)
        if not key:
            raise ConfigError(
                f"environment variable {spec.key_env} (named by LLM spec "
                f"{spec.provider}:{spec.model}) is not set",
                hint=f"export {spec.key_env}=... or drop #{spec.key_env} from the spec",
            )
        return key
    if preset.key_env and spec.base_url in (None, preset.base_url):
        key = os.environ.get(preset.key_env)
        if not key:
            raise ConfigError(
                f"{spec.provider}:{spec.model} needs an API key",
                hint=f"export {preset.key_env}=...",
            )
        return key
    return None
