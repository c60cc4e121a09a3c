"""Priority 9: what the registry's own tests already prove is referenced, not copied:
tokens on every mutating route (tests/registry/test_api.py::test_mutations_need_the_token,
test_client.py 401/403), a tampered artifact answered 409 (test_api.py::
test_artifact_download_etag_and_tamper), artifact URIs escaping the directory refused at
registration (test_api.py::test_sha_mismatch_and_escaping_paths_are_rejected), and ModelRouter
never loading bytes whose sha256 differs (test_client.py::
test_router_serves_the_routed_version_and_verifies_artifacts). Added here: the download route
under traversal attempts, and a stored artifact swapped for a symlink that leaves the directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.main import create_app
from registry.settings import RegistrySettings
from tests.chaos.harness import ScenarioFigures, elapsed_since
from tests.registry.conftest import make_deployment

TOKEN = "security-token"
MT = "calling_score"
SECRET = b"outside the artifact directory"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = RegistrySettings(
        state_dir=tmp_path / "state",
        artifact_dir=tmp_path / "artifacts",
        api_token=TOKEN,
        registry_kafka_enabled=False,
    )
    (tmp_path / "secret.txt").write_bytes(SECRET)
    with TestClient(create_app(settings)) as test_client:
        service = test_client.app.state.service  # type: ignore[attr-defined]
        assert service.register_deployment(make_deployment(tmp_path / "artifacts")).outcome == (
            "applied"
        )
        yield test_client


TRAVERSAL = (
    f"/models/{MT}/versions/..%2F..%2Fsecret.txt/artifact",
    "/models/..%2F..%2F/versions/v1.0/artifact",
    f"/models/{MT}/versions/%2e%2e/artifact",
    f"/models/{MT}/versions/v1.0%00/artifact",
    f"/models/{MT}/versions/v1.0/artifact/../../../secret.txt",
    "/dashboard/static/..%2F..%2F..%2Fsecret.txt",
)


def assert_no_file(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in {400, 404, 405, 422}, (path, response.status_code)
    assert SECRET not in response.content


@pytest.mark.parametrize("path", TRAVERSAL)
def test_traversal_attempts_never_return_a_file(client: TestClient, path: str) -> None:
    assert_no_file(client, path)


@pytest.mark.scenario("9 security: traversal + escaping symlink", size="ci+full")
def test_a_stored_artifact_swapped_for_an_escaping_symlink_is_not_served(
    client: TestClient, tmp_path: Path, record_row: Callable[[ScenarioFigures], None]
) -> None:
    began = time.monotonic()
    for path in TRAVERSAL:  # the row covers both: they run again here, in the row's own test
        assert_no_file(client, path)
    (stored,) = (tmp_path / "artifacts" / MT).glob("*.onnx")
    outside = tmp_path / "copy.onnx"
    outside.write_bytes(stored.read_bytes())  # the same bytes: the sha256 check alone would pass
    stored.unlink()
    stored.symlink_to(outside)
    response = client.get(f"/models/{MT}/versions/v1.0/artifact")
    assert response.status_code >= 400 and response.status_code != 500, response.status_code
    assert response.content != outside.read_bytes()
    record_row(
        ScenarioFigures(
            len(TRAVERSAL) + 1,
            f"{len(TRAVERSAL)} traversal URLs, 1 artifact swapped for a symlink out of the directory",
            None,
            None,
            None,
            notes=(
                "no file served; tokens, tamper (409), escaping URIs and ModelRouter sha256 "
                "checks are proven in tests/registry"
            ),
            seconds=elapsed_since(began),
        )
    )
