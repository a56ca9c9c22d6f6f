"""Reading Prometheus metrics in tests (this module holds no tests itself)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ponder.metrics import LABELS

# what a job, batch, tenant or key id looks like: no label value may
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


@dataclass(frozen=True)
class Scrape:
    """One scrape, parsed with prometheus_client's own parser: every sample by name."""

    text: str
    samples: list[tuple[str, dict[str, str], float]]
    families: dict[str, str]  # name -> type

    @classmethod
    def parse(cls, text: str) -> Scrape:
        samples = []
        families = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for sample in family.samples:
                samples.append((sample.name, dict(sample.labels), float(sample.value)))
        return cls(text, samples, families)

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels`` (0 when
        there is none)."""
        return sum(
            value
            for sample, have, value in self.samples
            if sample == name and all(have.get(k) == v for k, v in labels.items())
        )

    def has(self, name: str) -> bool:
        return any(sample == name for sample, _, _ in self.samples)

    def label_values(self, name: str, label: str) -> set[str]:
        return {have[label] for sample, have, _ in self.samples if sample == name and label in have}


def scrape(url: str) -> Scrape:
    answer = httpx.get(url, timeout=10.0)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain"), answer.headers
    return Scrape.parse(answer.text)


def check_labels_bounded(scraped: Scrape) -> None:
    """Every label of a Ponder metric is one of the bounded names, and no label value of
    any metric looks like an id."""
    for sample, labels, _ in scraped.samples:
        for name, value in labels.items():
            assert not UUID.search(value), f"{sample} has an id as its {name!r} label: {value}"
            if sample.startswith("ponder_") and name != "le":
                assert name in LABELS, f"{sample} has the unbounded label {name!r}"


def delta(before: Scrape, after: Scrape) -> Callable[..., float]:
    """``delta(name, **labels)``: how much a metric moved between two scrapes."""

    def moved(name: str, **labels: str) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    return moved
