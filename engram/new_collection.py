"""Creating a collection: its name, language, embedding model and own settings checked, by
``Engram.create_collection`` and by a first ingest (engram.embedders says which model)."""

from __future__ import annotations

from typing import Any

from .config import Settings
from .embedders import Embedders, mixed
from .errors import CollectionNotFound, Conflict, InvalidInput, ModelMismatch
from .memory.types import is_internal
from .providers.embedders.base import Embedder
from .search.analyzer import LANGUAGES, detect_language
from .search.fusion import FUSION_METHODS, Alpha, check_alpha
from .store.contract import Store
from .types import Collection, LoadedDocument


def check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "/" in name:
        raise InvalidInput("a collection name is 1 to 200 characters, without '/'")


def own_settings(
    settings: Settings,
    fusion: str | None = None,
    fusion_alpha: Alpha | None = None,
    keep_versions: int | None = None,
) -> dict[str, Any]:
    """The overrides given for a new collection (its chunking is added by :func:`create`,
    once its model is known)."""
    own: dict[str, Any] = {}
    if fusion is not None:
        if fusion not in FUSION_METHODS:
            raise InvalidInput(f"fusion must be one of {', '.join(FUSION_METHODS)}")
        own["fusion"] = fusion
    if fusion_alpha is not None:
        try:
            own["fusion_alpha"] = check_alpha(fusion_alpha)
        except ValueError as exc:
            raise InvalidInput(
                f"fusion_alpha: {exc}", hint="the vector leg's weight, 0 to 1, or 'auto'"
            ) from exc
    if keep_versions is not None:
        if (
            isinstance(keep_versions, bool)
            or not isinstance(keep_versions, int)
            or keep_versions < 0
        ):
            raise InvalidInput("keep_versions is a number of versions, 0 (all) or more")
        own["keep_versions"] = keep_versions
    return own


def create(
    store: Store,
    embedders: Embedders,
    name: str,
    *,
    language: str,
    model: str | None,
    own: dict[str, Any],
    tenant: str,
) -> Collection:
    """An empty collection of ``language`` (en, fr, none), embedded by ``model`` or by
    the language's model."""
    check_name(name)
    if language not in LANGUAGES:
        raise InvalidInput(
            f"a new collection needs a language: one of {', '.join(LANGUAGES)}, not {language!r}",
            hint="'auto' detects the language from a first ingest; name it to create"
            " an empty collection",
        )
    embedder = embedders.for_new(language, model=model)
    return store.create_collection(
        name,
        model_id=embedder.model_id,
        dimension=embedder.dimension,
        language=language,
        settings={**embedders.settings.chunking(embedder.model_id), **own},
        tenant=tenant,
    )


def language_and_model(
    embedders: Embedders,
    settings: Settings,
    texts: list[str],
    language: str | None,
    model: str | None = None,
) -> tuple[str, Embedder]:
    """The language and the model of a collection created from documents whose first
    ``texts`` (title and text) are given: ``language`` or the settings' ("auto": detected,
    and a mixed sample gets the multilingual model), ``model`` or the language's."""
    lang = language or settings.language
    is_mixed = False
    if lang == "auto":
        lang = detect_language(texts)
        is_mixed = lang == "en" and mixed(texts)
    return lang, embedders.for_new(lang, mixed=is_mixed, model=model)


def for_ingest(
    store: Store,
    embedders: Embedders,
    settings: Settings,
    name: str,
    first_docs: list[LoadedDocument],
    *,
    language: str | None,
    model: str | None,
    tenant: str,
) -> Collection:
    """The collection ``name`` to ingest into, created if needed: its language (``auto``:
    detected from ``first_docs``) and model as :mod:`engram.embedders` says. ``model`` is
    only for a new collection: an existing one named with another model is refused."""
    if is_internal(name):
        raise InvalidInput(
            f"{name!r} is not a collection name: a collection name has no '/'",
            hint="names with '/' are engram's own (users' conversation recall)",
        )
    try:
        collection = store.get_collection(name, tenant=tenant)
    except CollectionNotFound:
        texts = [d.title + "\n" + d.text for d in first_docs]
        lang, embedder = language_and_model(embedders, settings, texts, language, model)
        try:
            return store.create_collection(
                name,
                model_id=embedder.model_id,
                dimension=embedder.dimension,
                language=lang,
                settings=settings.chunking(embedder.model_id),
                tenant=tenant,
            )
        except Conflict:
            # Created meanwhile by another process (e.g. concurrent job workers each
            # ingesting a part of one batch): use that one, after the same model check.
            collection = store.get_collection(name, tenant=tenant)
    if model is not None and embedders.get(model).model_id != collection.model_id:
        raise ModelMismatch(
            f"collection {name!r} holds {collection.model_id!r} vectors, not {model!r} ones",
            hint="leave the model out to ingest with the collection's own, or ingest into"
            " another collection (-c NAME) to use that model",
        )
    embedders.for_collection(collection)  # refuse a collection whose model cannot load
    return collection
