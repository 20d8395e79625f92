"""Settings: one pydantic-settings class, every key with a default and help text.

Values come from (highest first) explicit arguments, ``ENGRAM_*`` environment variables, a
``.env`` file in the working directory, then the defaults below. Build one explicitly with
``Settings(...)`` and pass it around; nothing is read at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError


class Settings(BaseSettings):
    """Every engram setting. Environment variable: ``ENGRAM_<NAME>`` (upper case)."""

    model_config = SettingsConfigDict(
        env_prefix="ENGRAM_", env_file=".env", extra="ignore", validate_assignment=True
    )

    data_dir: Path = Field(
        Path(".engram"), description="Directory holding the SQLite database and vector indexes."
    )
    database_url: str | None = Field(
        None,
        pattern=r"^postgres(ql)?://",
        description="PostgreSQL URL (postgresql://user:password@host:5432/dbname): keep "
        "everything in PostgreSQL + pgvector instead of the SQLite file in data_dir, so several "
        "engram processes and machines share one database. Needs the `postgres` extra and the "
        "`vector` extension (CREATE EXTENSION vector, as a superuser).",
    )
    database_pool_size: int = Field(
        10, ge=1, le=1000, description="Most PostgreSQL connections one engram process opens."
    )
    postings_cache_mb: int = Field(
        256,
        ge=0,
        le=1_000_000,
        description="PostgreSQL backend: memory for the posting lists of frequent terms, kept "
        "decoded in each process and re-read only when the database's copy changed (0: off).",
    )
    embedding_model: str = Field(
        "bge-small-en-v1.5",
        description="Embedding model of new English collections (and of language 'none'; of "
        "every new collection when set to another model than the default and "
        "multilingual_model is left 'auto'): a known name (bge-small-en-v1.5, "
        "multilingual-e5-small), a local directory with model.onnx + tokenizer.json, 'hash' "
        "(a deterministic test embedder, no model), or a remote model as "
        "PROVIDER:MODEL[@BASE_URL][#KEY_ENV] like the LLM specs "
        "(openai:text-embedding-3-small, ollama:nomic-embed-text@http://127.0.0.1:11434). "
        "A collection keeps the model it was created with; memories and agent state use this one.",
    )
    multilingual_model: str = Field(
        "auto",
        description="Embedding model of new French and mixed collections (language fr, or "
        "detected at their first ingest as French, or as English with 30% or more of its "
        "stopwords French). 'auto': multilingual-e5-small (the `multilingual` extra; without it, "
        "embedding_model) while embedding_model is the default bge-small-en-v1.5, else "
        "embedding_model itself. Takes the names embedding_model takes.",
    )
    reranker_model: str = Field(
        "ms-marco-minilm-l12-v2",
        description="Cross-encoder used by --rerank (name or directory).",
    )
    model_cache_dir: str = Field(
        "",
        description="Where optimized copies of the ONNX models' graphs are kept: a model "
        "session then loads without optimizing its graph again (a third faster, the same "
        "results). Empty: $XDG_CACHE_HOME/engram/onnx, else ~/.cache/engram/onnx; 'off': "
        "optimize at every load and write nothing. multilingual-e5-small is built here too, "
        "once (with 'off', in the default place).",
    )
    rerank_candidates: int = Field(
        20, ge=1, le=1000, description="How many fused results the cross-encoder rescores."
    )
    rerank_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="The cross-encoder's share of the reranked order: the rescored candidates "
        "are ranked by w × model score + (1 - w) × fused score, each min-max normalised over "
        "them. 1.0 orders by the model alone, which lowered nDCG@10 of hybrid search on SciFact "
        "and Cranfield; 0.5 lowered it on no dataset and mode measured (docs/benchmarks.md).",
    )
    chunk_tokens: int = Field(
        256,
        ge=16,
        le=8192,
        description="Maximum chunk size of new collections, in tokens of their embedding model."
        " Unset: 256, or the model's own size where it retrieves better with another"
        " (multilingual-e5-small: 128; docs/benchmarks.md, 'Chunk size per model'). A"
        " collection keeps the chunking it was created with.",
    )
    chunk_overlap: int = Field(
        32, ge=0, le=1024, description="Tokens shared by consecutive pieces of a long block."
    )
    keep_versions: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Versions of each document to keep, the current one included: a new "
        "version drops the oldest beyond this many (their text, and the cached vectors only "
        "they used). 0 (default) keeps every version. A collection's own keep_versions "
        "overrides it; `engram versions purge` drops old versions at any time.",
    )
    embed_batch_size: int = Field(
        1,
        ge=1,
        le=1024,
        description="Texts per model run. 1 (default) makes a text's vector independent of the "
        "texts embedded with it (the int8 model scales activations per run), and on 2 cores "
        "ingests chunks of ~256 tokens 6% faster with a fifth of the memory of 32.",
    )
    embed_request_size: int = Field(
        64,
        ge=1,
        le=2048,
        description="Texts per request to a remote embedding model (an openai:... or "
        "ollama:... embedding_model).",
    )
    query_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="CPU threads of one query embedding (the search path); each process runs "
        "one at a time. 1 suits a server with one worker per core (queries then share the "
        "passages' one-thread session); 0 sends them through the passage runs.",
    )
    query_batch: int = Field(
        1,
        ge=1,
        le=64,
        description="Most concurrent queries embedded in one model run. Above 1, batching "
        "saves ≈ 15% of the CPU per query under load, but the int8 model's vector of a query "
        "then depends slightly on the queries batched with it (cosine ≥ 0.988 measured).",
    )
    language: Literal["auto", "en", "fr", "none"] = Field(
        "auto",
        description="Default keyword-analysis language of new collections (stemming and "
        "stopwords); 'auto' detects it from the first documents ingested.",
    )
    fuzzy: bool = Field(
        True, description="Expand query words absent from the index to close spellings."
    )
    fusion: Literal["dbsf", "minmax", "rrf"] = Field(
        "dbsf",
        description="How hybrid search fuses its legs: 'dbsf' (weighted sum of scores "
        "normalised by mean ± 3 std), 'minmax' (weighted sum of min-max-normalised scores) "
        "or 'rrf' (weighted reciprocal rank fusion).",
    )
    fusion_alpha: Annotated[float, Field(ge=0.0, le=1.0)] | Literal["auto"] = Field(
        "auto",
        description="Weight of the vector leg in hybrid fusion (0..1; the keyword leg gets "
        "the rest), or 'auto': chosen per query from its number of words, 0.9 for 3 words "
        "or fewer down to 0.6 from 9 words on, and 0.9 for an English query on a French "
        "collection's French text (docs/benchmarks.md, 'Choosing the fusion').",
    )
    rrf_k: int = Field(60, ge=1, description="The k constant of reciprocal rank fusion.")
    candidates: int = Field(
        150, ge=10, le=10000, description="Candidates each leg contributes to fusion."
    )
    exact_search_below: int = Field(
        5000,
        ge=0,
        description="Collections with fewer vectors are searched exactly (numpy) instead of "
        "by HNSW; exact costs about 1 ms per 5,000 vectors of 384 dimensions. On the embedded "
        "backend they have no HNSW graph at all (it is built when they reach this size).",
    )
    hnsw_m: int = Field(16, ge=4, le=128, description="HNSW graph connectivity (M).")
    hnsw_ef_construction: int = Field(
        128, ge=8, description="HNSW candidate list size while building."
    )
    hnsw_ef_search: int = Field(128, ge=8, description="HNSW candidate list size while searching.")
    max_query_chars: int = Field(4096, ge=16, description="Longest query accepted, in characters.")

    http_header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a request's line and headers (from the "
        "connection opening, or its previous request's end); past it: 408, connection closed.",
    )
    http_body_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a client has to send a whole request body once its headers are "
        "in; past it: 408, connection closed.",
    )
    tracing: bool = Field(
        False,
        description="Emit OpenTelemetry spans (HTTP request, embedding, keyword and vector legs, "
        "fusion, rerank, LLM call, store transactions) to the process's tracer provider, or "
        'over OTLP (OTEL_EXPORTER_OTLP_* variables); needs pip install "engram[otel]".',
    )
    auth: Literal["api_key", "none"] = Field(
        "api_key",
        description="HTTP API authentication: 'api_key' (keys from `engram keys create`, sent as "
        "'Authorization: Bearer <key>' or 'X-API-Key: <key>') or 'none' (every request acts "
        "for the default tenant; `engram serve` accepts it on a loopback address only).",
    )
    jwt_secret: str | None = Field(
        None,
        description="Shared secret (HS256) to accept JWT bearer tokens from an identity provider.",
    )
    jwt_jwks_url: str | None = Field(
        None,
        description="JWKS URL of an identity provider to accept RS256/ES256 JWT bearer tokens.",
    )
    jwt_issuer: str | None = Field(None, description="Required 'iss' claim of JWTs, if set.")
    jwt_audience: str | None = Field(None, description="Required 'aud' claim of JWTs, if set.")
    jwt_tenant_claim: str = Field("tenant", description="JWT claim naming the caller's tenant.")
    jwt_user_claim: str | None = Field(
        None,
        description="JWT claim (e.g. 'sub') that binds a token to one user of its tenant: it"
        " then reaches only that user's conversations, memories and state, never with the"
        " admin scope. Unset: tokens act for their whole tenant.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the HTTP API from a browser (CORS), e.g. "
        '["https://app.example.com"]; none by default.',
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Requests per minute allowed per API key (0: no limit)."
    )
    rate_limit_ip_per_minute: int = Field(
        1200, ge=0, description="Requests per minute allowed per client IP address (0: no limit)."
    )

    llm: str = Field(
        "",
        description="Chat models for /v1/chat, tried in order: comma-separated "
        "PROVIDER:MODEL[@BASE_URL][#KEY_ENV] (providers: openai, deepseek, vllm, llamacpp, "
        "ollama). Empty: answers are extractive, quoted from the passages.",
    )
    llm_timeout: float = Field(
        60.0, gt=0, description="Seconds to wait for each piece of a model's reply."
    )
    llm_deadline: float = Field(
        120.0,
        gt=0,
        description="Seconds one model call may take in all (retries and the whole reply "
        "included); a reply still arriving then is cut off and its connection closed.",
    )
    llm_retries: int = Field(
        2, ge=0, le=10, description="Extra attempts on connect errors, 5xx and 429."
    )
    llm_max_tokens: int = Field(1024, ge=1, description="Longest answer, in model tokens.")
    answer_template: str | None = Field(
        None,
        description="System prompt for answers; must contain {passages}, may contain "
        "{memories} and {question}. None: the built-in template.",
    )
    chat_history_messages: int = Field(
        10, ge=0, le=200, description="Conversation messages /v1/chat puts before the question."
    )
    chat_rewrite: Literal["auto", "llm", "heuristic", "off"] = Field(
        "auto",
        description="How /v1/chat makes a follow-up question standalone before retrieval: "
        "'llm' asks the configured model, 'heuristic' adds the salient words of the last turns "
        "(engram.memory.rewrite), 'auto' the model when one is configured, else the heuristic.",
    )
    chat_recall: int = Field(
        3,
        ge=0,
        le=20,
        description="Turns of the user's earlier conversations /v1/chat recalls into the prompt "
        "(0: none).",
    )

    redis_url: str | None = Field(
        None,
        description="Redis URL (redis://host:6379/0) for the shared query-embedding and "
        "search-result caches; unset: in-process LRU caches.",
    )
    cache_size: int = Field(
        1024, ge=0, description="Entries in each in-process cache (0 disables caching)."
    )
    cache_ttl: int = Field(600, ge=1, description="Seconds a Redis cache entry lives.")

    job_retention_days: int = Field(
        30,
        ge=0,
        le=36500,
        description="Finished background jobs (succeeded, or failed with the work kept for a"
        " retry) are deleted this many days after they finished, by `engram serve` and"
        " `engram worker`, hourly. 0: kept.",
    )
    analytics_retention_days: int = Field(
        0,
        ge=0,
        le=36500,
        description="Analytics events older than this many days are deleted (with any still "
        "waiting to be forwarded) by `engram serve` and `engram worker`, hourly. 0: kept.",
    )
    analytics_forward_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Forward every recorded analytics event to this PostHog-compatible "
        "capture API (POST <url>/batch/), e.g. https://eu.i.posthog.com. Events wait in the "
        "database's outbox until the endpoint takes them (retried with exponential backoff, "
        "sent once by one of several processes); requests never wait for it.",
    )
    analytics_forward_key: str | None = Field(
        None, description="The project API key sent with forwarded events (api_key)."
    )
    analytics_forward_batch: int = Field(
        100, ge=1, le=1000, description="Most events forwarded in one request."
    )
    analytics_forward_queries: bool = Field(
        False,
        description="Include the (normalised) query text in forwarded search and chat "
        "events; off by default, as queries may hold personal data.",
    )

    def chunking(self, model_id: str | None = None) -> dict[str, Any]:
        """What a new collection of the model ``model_id`` records of these settings: how
        its documents are chunked (a collection keeps chunking as it was created:
        :meth:`for_collection`) and analyzed for keywords (``analysis``: the analyzer's
        version, kept for good as well). Unless chunk_tokens was set, a known model's own
        chunk size wins over the default."""
        tokens = self.chunk_tokens
        if model_id is not None and "chunk_tokens" not in self.model_fields_set:
            from .providers.models import known_model

            known = known_model(model_id)
            if known is not None and known.chunk_tokens is not None:
                tokens = known.chunk_tokens
        from .search.analyzer import ANALYSIS_VERSION

        return {
            "chunk_tokens": tokens,
            "chunk_overlap": self.chunk_overlap,
            "analysis": ANALYSIS_VERSION,
        }

    def for_collection(self, own: Mapping[str, Any]) -> Settings:
        """These settings with the chunking a collection recorded at its creation (``own``:
        its settings), so that changing ENGRAM_CHUNK_TOKENS later chunks new collections
        differently but leaves an existing one's documents, and their content hashes, as
        they were."""
        update = {
            k: own[k]
            for k in ("chunk_tokens", "chunk_overlap")
            if isinstance(own.get(k), int) and own[k] != getattr(self, k)
        }
        return self.model_copy(update=update) if update else self

    def embedder_options(self, name: str) -> dict[str, Any]:
        """The options :func:`engram.providers.get_embedder` builds the model ``name`` with."""
        from .providers import hash_model_id, is_remote

        if is_remote(name):
            return {"batch_size": self.embed_request_size}
        if hash_model_id(name) is not None:
            return {}
        return {
            "batch_size": self.embed_batch_size,
            "query_threads": self.query_threads or None,
            "query_batch": self.query_batch,
            "model_cache": self.model_cache_dir,
        }

    @classmethod
    def build(cls, **overrides: Any) -> Settings:
        """Build settings, turning validation errors into a ConfigError that names the key,
        the bad value and where it came from."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**clean)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            origin = "argument" if key in clean else f"environment variable ENGRAM_{key.upper()}"
            raise ConfigError(
                f"invalid setting {key}={err.get('input')!r} (from {origin}): {err['msg']}",
                hint=cls.model_fields[key].description if key in cls.model_fields else None,
            ) from exc

    @property
    def db_path(self) -> Path:
        return self.data_dir / "engram.db"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"
