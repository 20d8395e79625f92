"""/docs and /redoc work offline (every asset from the server itself) and the OpenAPI schema
declares the bearer scheme, so "Try it out" can send a key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engram.config import Settings
from engram.server.app import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.build(data_dir=tmp_path / "d", embedding_model="hash")
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_reference_pages_load_only_local_assets(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    urls = re.findall(
        r"""(?:src|href)=["']([^"']+)["']|(?:url|spec-url)\s*[:=]\s*['"]([^'"]+)""", html.text
    )
    urls = [a or b for a, b in urls]
    assert urls, "no asset found in the page"
    for url in urls:
        assert url.startswith("/"), f"{page} loads {url} from another host"
        assert client.get(url).status_code == 200, url
    assert "http://" not in html.text and "https://" not in html.text


def test_openapi_declares_the_bearer_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert schema["security"] == [{"bearer": []}]
    assert schema["paths"]["/v1/health"]["get"]["security"] == []
    assert "security" not in schema["paths"]["/v1/search"]["post"]  # the global one applies


def test_try_it_out_sends_what_the_scheme_says(client: TestClient, tmp_path: Path) -> None:
    """What Swagger UI sends after "Authorize" (Authorization: Bearer <key>) is accepted."""
    import engram

    with engram.open(tmp_path / "d", embedding_model="hash") as db:
        key = db.create_key(scopes=["read"])[1]
    assert client.get("/v1/collections").status_code == 401
    ok = client.get("/v1/collections", headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200
