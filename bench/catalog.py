"""Catalog card benchmark: the "add subscription" cards for a 1,000-product catalog.

Run from the repository root:

    .venv/bin/python bench/catalog.py            # 200 builds of each card
    .venv/bin/python bench/catalog.py --runs 50

A synthetic catalog of 1,000 products (8 categories × 12 product groups, one SKU each, five terms
each, all priced in a global list with a later correction for some) is built in memory. Measured,
each as the median and p95 of `--runs` builds, in the same process:

- the storefront (catalog × price list → what is offered), once per card in the dialog;
- the category card, the product-group card of the largest category, and the first page of the
  product list of the largest group — each `render_stage_card` + `json.dumps` (what goes on the wire);
- a trivial card (`card([text("Hello")])` + `json.dumps`) as the baseline the ratios refer to.

It prints figures and PASS/MISS against the target (≤ 50 ms per card); it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cards.base import card, text  # noqa: E402
from dialogs.add_subscription import render_stage_card  # noqa: E402
from services.catalog import ProductView, SkuView, TermView  # noqa: E402
from services.ordering import Storefront, build_storefront  # noqa: E402
from services.price_rules import PriceScope, UnitPrice  # noqa: E402

TARGET_MS = 50.0
PRODUCTS = 1000
CATEGORIES = 8
GROUPS = 12
TERMS = (("P1M", "monthly"), ("P1Y", "monthly"), ("P1Y", "annual"), ("P3Y", "monthly"), ("P3Y", "annual"))
DAY = date(2026, 11, 16)


def synthetic_catalog() -> tuple[list[ProductView], list[UnitPrice]]:
    products: list[ProductView] = []
    entries: list[UnitPrice] = []
    entry_id = 0
    for index in range(PRODUCTS):
        product_id = f"CFQ7TTC{index:05d}"
        category = f"Category {index % CATEGORIES}"
        group = f"Group {(index // CATEGORIES) % GROUPS}"
        terms = tuple(TermView(term, cycle, f"{term} {cycle}", "USD") for term, cycle in TERMS)
        sku = SkuView(
            product_id,
            "0001",
            f"Product {index}",
            "Includes mail, files, meetings and chat for one user. " * 3,
            1,
            300,
            f"00000000-0000-0000-0000-{index:012d}",
            False,
            False,
            terms,
        )
        products.append(
            ProductView(
                product_id, f"Product {index}", "A product for businesses. " * 6, category, group, "default", (sku,)
            )
        )
        for term, cycle in TERMS:
            entry_id += 1
            entries.append(
                UnitPrice(
                    entry_id,
                    PriceScope.GLOBAL,
                    product_id,
                    "0001",
                    term,
                    cycle,
                    "USD",
                    Decimal("6.25"),
                    date(2026, 1, 1),
                )
            )
            if index % 10 == 0:  # a later correction
                entry_id += 1
                entries.append(
                    UnitPrice(
                        entry_id,
                        PriceScope.GLOBAL,
                        product_id,
                        "0001",
                        term,
                        cycle,
                        "USD",
                        Decimal("6.50"),
                        date(2026, 6, 1),
                    )
                )
    return products, entries


def measure(build: Callable[[], Any], runs: int) -> tuple[float, float, int]:
    """Median and p95 in ms, and the size of one result in bytes (when it is text)."""
    build()  # warm-up
    times = []
    result: Any = None
    for _ in range(runs):
        start = time.perf_counter()
        result = build()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    size = len(result.encode()) if isinstance(result, str) else 0
    return statistics.median(times), p95, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    products, entries = synthetic_catalog()
    store: Storefront = build_storefront(products, entries, DAY)
    largest_category = max(store.categories(), key=lambda c: sum(1 for p in store.products if p.product.category == c))
    largest_group = max(store.groups(largest_category), key=lambda g: len(store.in_group(largest_category, g)))

    def stage(state: dict[str, Any]) -> Callable[[], str]:
        return lambda: json.dumps(render_stage_card(store, {**state, "card": "t" * 32}))

    def with_storefront(state: dict[str, Any]) -> Callable[[], str]:
        """What the dialog does per card: the storefront, then the card."""
        return lambda: json.dumps(
            render_stage_card(build_storefront(products, entries, DAY), {**state, "card": "t" * 32})
        )

    product_state = {"screen": "product", "category": largest_category, "group": largest_group, "page": 0}

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("trivial card (baseline)", lambda: json.dumps(card([text("Hello")]))),
        ("storefront (1,000 products, 5,500 prices)", lambda: build_storefront(products, entries, DAY)),
        ("category card", stage({"screen": "category"})),
        (f"group card ({largest_category})", stage({"screen": "group", "category": largest_category})),
        (
            f"product list card ({len(store.in_group(largest_category, largest_group))} products, page 1)",
            stage(product_state),
        ),
        ("category card incl. storefront", with_storefront({"screen": "category"})),
        ("product list card incl. storefront", with_storefront(product_state)),
    ]
    results = [(name, *measure(build, args.runs)) for name, build in cases]
    baseline = results[0][1]
    sys.stdout.write(f"catalog card benchmark: {len(store.products)} offered products, {args.runs} runs each\n")
    sys.stdout.write(f"{'what':<52} {'median ms':>10} {'p95 ms':>8} {'× trivial':>10} {'bytes':>7}\n")
    for name, median, p95, size in results:
        sys.stdout.write(f"{name:<52} {median:>10.3f} {p95:>8.3f} {median / baseline:>10.0f} {size or '':>7}\n")
    for name, median, _p95, _ in results[2:]:
        verdict = "PASS" if median <= TARGET_MS else "MISS"
        sys.stdout.write(f"{verdict}: {name}: median {median:.2f} ms (target ≤ {TARGET_MS:.0f} ms per card)\n")
    sys.stdout.write(
        "note: the dialog also reads the catalog and the price lists from the database for each card; "
        "that read is not measured here\n"
    )


if __name__ == "__main__":
    main()
