"""Agent test fixtures: the real model (loaded once), real Redis, Milvus Lite in tmp dirs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agent.api import create_app  # noqa: E402
from agent.config import Settings  # noqa: E402
from agent.embeddings import Encoder  # noqa: E402

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

# A dozen short, distinct paragraphs: each query in the tests has exactly one right answer.
CORPUS = {
    "volcano": "Mount Etna is an active stratovolcano on the east coast of Sicily. Its eruptions are frequent "
               "and lava flows have reached the town of Catania several times in recorded history.",
    "sourdough": "A sourdough starter is a fermented mixture of flour and water that contains wild yeast and "
                 "lactic acid bacteria. Feed the starter daily and bake when it doubles in size.",
    "tides": "Ocean tides are caused mainly by the gravitational pull of the Moon, with a smaller "
             "contribution from the Sun. Spring tides happen when the Sun and Moon align.",
    "chess": "In chess, castling moves the king two squares towards a rook and places that rook on the "
             "square the king crossed. It is illegal to castle out of check.",
    "photosynthesis": "Photosynthesis converts light energy into chemical energy. Chlorophyll in the "
                      "chloroplasts absorbs sunlight, and the plant releases oxygen as a by-product.",
    "bicycle": "To fix a flat bicycle tyre, remove the wheel, lever the tyre off the rim, find the puncture "
               "in the inner tube and seal it with a rubber patch before reinflating.",
    "coffee": "Espresso is brewed by forcing hot water through finely ground coffee at about nine bars of "
              "pressure. A single shot takes roughly twenty-five seconds to extract.",
    "penguins": "Emperor penguins breed during the Antarctic winter. The male incubates the single egg on "
                "his feet for about two months while the female feeds at sea.",
    "vaccines": "Vaccines train the immune system by exposing it to a harmless piece or weakened form of a "
                "pathogen, so that memory cells respond quickly to a later infection.",
    "warranty": "The XK-42 router ships with a three year limited warranty. Claims require the original "
                "receipt and the serial number printed under the device.",
    "marathon": "A marathon is 42.195 kilometres long. The distance was standardised in 1921 and traces back "
                "to the 1908 London Olympics course.",
    "glaciers": "Glaciers form where more snow accumulates each winter than melts each summer. Over decades "
                "the snow compacts into dense blue ice that flows slowly downhill.",
}


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """The real all-MiniLM-L6-v2 encoder, loaded once for the whole session."""
    return Encoder.load(device="cpu")


@pytest.fixture
def make_settings(tmp_path: Path, redis_url: str) -> Callable[..., Settings]:
    def make(**overrides) -> Settings:
        values = {"data_dir": tmp_path / "data", "redis_url": redis_url, "api_keys": API_KEY,
                  "rate_limit_per_minute": 100_000, "log_level": "WARNING"}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="module")
def corpus_client(tmp_path_factory: pytest.TempPathFactory, redis_url: str, encoder: Encoder) -> Iterator[TestClient]:
    """One app with the corpus ingested, shared by the read-only API tests of a module."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("agent-data"), redis_url=redis_url, api_keys=API_KEY,
                        rate_limit_per_minute=100_000, log_level="WARNING")
    with TestClient(create_app(settings, encoder=encoder)) as client:
        response = client.post("/documents", headers=AUTH, json={"documents": [
            {"id": doc_id, "text": text, "metadata": {"topic": doc_id}} for doc_id, text in CORPUS.items()]})
        assert response.status_code == 200, response.text
        yield client
