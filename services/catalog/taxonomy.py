"""Where a product sits in the catalog: category → product group.

Partner Center has no product groups, so the placement is ours: an operator's edit wins, else the
shipped mapping by product id, else a family rule on the title, else "Other" (and an alert)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from services.errors import InvalidInput

DEFAULT_TAXONOMY_FILE = Path(__file__).with_name("default_taxonomy.json")
OTHER = "Other"
MAX_NAME = 80


class PlacementSource(StrEnum):
    OPERATOR = "operator"
    DEFAULT = "default"
    UNMAPPED = "unmapped"


@dataclass(frozen=True)
class Placement:
    category: str
    product_group: str
    source: PlacementSource


@dataclass(frozen=True)
class _Family:
    pattern: re.Pattern[str]
    category: str
    product_group: str


class DefaultTaxonomy:
    """The shipped mapping (`default_taxonomy.json`): placements by product id and family rules."""

    def __init__(self, by_product: Mapping[str, tuple[str, str]], families: list[_Family], addon_category: str) -> None:
        self._by_product = {key.upper(): value for key, value in by_product.items()}
        self._families = families
        self._addon_category = addon_category

    @classmethod
    def load(cls, path: Path = DEFAULT_TAXONOMY_FILE) -> DefaultTaxonomy:
        data = json.loads(path.read_text(encoding="utf-8"))
        families = [
            _Family(re.compile(rule["title"], re.IGNORECASE), rule["place"][0], rule["place"][1])
            for rule in data.get("families", [])
        ]
        by_product = {key: (value[0], value[1]) for key, value in data.get("products", {}).items()}
        return cls(by_product, families, data.get("addonCategory", "Add-ons"))

    def place(self, product_id: str, title: str, *, is_addon: bool) -> Placement:
        known = self._by_product.get(product_id.upper())
        if known is not None:
            return Placement(known[0], known[1], PlacementSource.DEFAULT)
        for family in self._families:
            if family.pattern.search(title):
                category = self._addon_category if is_addon else family.category
                return Placement(category, family.product_group, PlacementSource.DEFAULT)
        return Placement(OTHER, OTHER, PlacementSource.UNMAPPED)


def clean_name(value: str, field: str) -> str:
    """A category or group name as the operator typed it, trimmed; refused when empty or too long."""
    cleaned = " ".join(value.split())
    if not cleaned or len(cleaned) > MAX_NAME:
        raise InvalidInput(f"The {field} must be 1-{MAX_NAME} characters.", field=field)
    return cleaned
