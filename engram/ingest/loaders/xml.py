"""XML: the text of every element, a block per element that holds text of its own
(paragraph-like), markup and attributes dropped. The root element's ``title`` child, if
any, names the document."""

from __future__ import annotations

from engram.ingest.loaders.base import LoaderOptions, fail, fallback_title, no_text
from engram.types import Block, LoadedDocument


def load(
    data: bytes, *, key: str, name: str, source: str, options: LoaderOptions
) -> list[LoadedDocument]:
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, recover=False
    )
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise fail(source, f"invalid XML: {exc}") from exc
    parts: list[str] = []

    def walk(element: etree._Element) -> None:
        # An element with text of its own is one block, inline children included
        # (<p>Hello <b>world</b> again</p>); others are walked into.
        if isinstance(element.tag, str):
            if element.text and element.text.strip():
                parts.append(" ".join("".join(element.itertext()).split()))
            else:
                for child in element:
                    walk(child)
        if element.tail and element.tail.strip() and element is not root:
            parts.append(" ".join(element.tail.split()))

    walk(root)
    parts = [p for p in parts if p]
    blocks: list[Block] = []
    offset = 0
    for part in parts:
        blocks.append(Block(offset, offset + len(part)))
        offset += len(part) + 2  # the "\n\n" joining blocks
    text = "\n\n".join(parts)
    if not text.strip():
        raise no_text(source)
    title_element = root.find("title")
    title = (title_element.text or "").strip() if title_element is not None else ""
    return [
        LoadedDocument(
            key=key, text=text, title=title or fallback_title(name), blocks=blocks, source=source
        )
    ]
