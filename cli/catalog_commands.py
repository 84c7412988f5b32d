"""`cspbot prices …` and `cspbot catalog …`: the reseller's price lists and the catalog cache.

    cspbot prices lists [--json]
    cspbot prices import LIST FILE [--replace]        (FILE '-' reads stdin)
    cspbot prices export LIST [--out FILE]
    cspbot prices assign ORG LIST | cspbot prices unassign ORG
    cspbot prices generate --markup 15% [--list global] [--market US]
    cspbot prices unpriced [--org ORG] [--json]       (also raises the operator alert)
    cspbot prices delete LIST
    cspbot catalog sync
    cspbot catalog list [--json]
    cspbot catalog place PRODUCT_ID --category NAME --group NAME | cspbot catalog reset PRODUCT_ID

One module per command group; `cli/main.py` names it in COMMANDS.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from cli.output import actor, out
from services import formatting
from services.container import Services
from services.errors import InvalidInput
from services.pricing import GLOBAL_LIST, parse_markup

if TYPE_CHECKING:
    from cli.output import Commands


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def add_catalog_commands(commands: Commands) -> None:
    """Add `prices` and `catalog` to the CLI's subcommands."""
    prices = commands.add_parser("prices", help="the reseller's price lists").add_subparsers(
        dest="action", required=True, metavar="{lists,import,export,assign,unassign,generate,unpriced,delete}"
    )
    lists = prices.add_parser("lists", help="the price lists, their size and organisations")
    lists.add_argument("--json", action="store_true", help="machine-readable JSON output")
    lists.set_defaults(handler=_prices_lists)

    load = prices.add_parser("import", help="load a CSV into a list (created if missing); all rows or none")
    load.add_argument("list_name", metavar="LIST", help=f"list name; '{GLOBAL_LIST}' is the global list")
    load.add_argument("file", metavar="FILE", help="CSV file ('-' for stdin)")
    load.add_argument("--replace", action="store_true", help="remove the list's entries that are not in the file")
    load.set_defaults(handler=_prices_import)

    export = prices.add_parser("export", help="write a list as CSV (the format import reads)")
    export.add_argument("list_name", metavar="LIST")
    export.add_argument("--out", type=pathlib.Path, help="file to write (default: stdout)")
    export.set_defaults(handler=_prices_export)

    assign = prices.add_parser("assign", help="give an organisation its customer-specific list")
    assign.add_argument("slug", metavar="ORG")
    assign.add_argument("list_name", metavar="LIST")
    assign.set_defaults(handler=_prices_assign)

    unassign = prices.add_parser("unassign", help="an organisation goes back to global prices only")
    unassign.add_argument("slug", metavar="ORG")
    unassign.set_defaults(handler=_prices_unassign)

    generate = prices.add_parser("generate", help="prices from Microsoft's price sheet (your cost) plus a markup")
    generate.add_argument("--markup", required=True, help="e.g. 15%% (cost + 15 %%)")
    generate.add_argument("--list", dest="list_name", default=GLOBAL_LIST, help=f"list to fill (default {GLOBAL_LIST})")
    generate.add_argument("--market", default="US", help="price sheet market (default US)")
    generate.set_defaults(handler=_prices_generate)

    unpriced = prices.add_parser("unpriced", help="catalog items with no price in force today (raises an alert)")
    unpriced.add_argument("--org", help="check an organisation's prices (its list + global) instead of global")
    unpriced.add_argument("--json", action="store_true", help="machine-readable JSON output")
    unpriced.set_defaults(handler=_prices_unpriced)

    delete = prices.add_parser("delete", help="delete a list and its entries")
    delete.add_argument("list_name", metavar="LIST")
    delete.set_defaults(handler=_prices_delete)

    catalog = commands.add_parser("catalog", help="the catalog cache and its taxonomy").add_subparsers(
        dest="action", required=True, metavar="{sync,list,place,reset}"
    )
    sync = catalog.add_parser("sync", help="read products, SKUs and terms from Partner Center now")
    sync.set_defaults(handler=_catalog_sync)

    listing = catalog.add_parser("list", help="products by category and product group")
    listing.add_argument("--json", action="store_true", help="machine-readable JSON output")
    listing.set_defaults(handler=_catalog_list)

    place = catalog.add_parser("place", help="put a product in a category and product group (kept across syncs)")
    place.add_argument("product_id", metavar="PRODUCT_ID")
    place.add_argument("--category", required=True)
    place.add_argument("--group", required=True)
    place.set_defaults(handler=_catalog_place)

    reset = catalog.add_parser("reset", help="back to the shipped placement of a product")
    reset.add_argument("product_id", metavar="PRODUCT_ID")
    reset.set_defaults(handler=_catalog_reset)


async def _prices_lists(args: argparse.Namespace, services: Services) -> None:
    lists = await services.pricing.lists()
    if args.json:
        out(_json([asdict(item) for item in lists]))
        return
    if not lists:
        out("No price lists yet. `cspbot prices generate --markup 15%` or `cspbot prices import global FILE`.")
    for item in lists:
        scope = (
            "global"
            if item.is_global
            else ("for " + ", ".join(item.organisations) if item.organisations else "unassigned")
        )
        out(f"{item.name}  {formatting.plural(item.entries, 'price', 'prices')}  {scope}")


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return pathlib.Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text (save the CSV as UTF-8).") from None


async def _prices_import(args: argparse.Namespace, services: Services) -> None:
    result = await services.pricing.import_csv(args.list_name, _read(args.file), actor=actor(), replace=args.replace)
    out(
        f"Price list {result.list_name}: {result.created} added, {result.updated} changed, "
        f"{result.unchanged} unchanged, {result.removed} removed."
    )


async def _prices_export(args: argparse.Namespace, services: Services) -> None:
    text = await services.pricing.export_csv(args.list_name)
    if args.out is None:
        sys.stdout.write(text)
        return
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"cannot write {args.out}: {error.strerror or error}") from None
    out(f"Wrote {args.out}")


async def _prices_assign(args: argparse.Namespace, services: Services) -> None:
    await services.pricing.assign(args.slug, args.list_name, actor=actor())
    out(f"{args.slug} now pays the prices of list {args.list_name} (global prices where it has none).")


async def _prices_unassign(args: argparse.Namespace, services: Services) -> None:
    await services.pricing.assign(args.slug, None, actor=actor())
    out(f"{args.slug} now pays global prices.")


async def _prices_generate(args: argparse.Namespace, services: Services) -> None:
    markup = parse_markup(args.markup)
    result = await services.pricing.generate(args.list_name, markup, actor=actor(), market=args.market)
    out(
        f"Price list {result.list_name} from the {args.market.upper()} price sheet + {markup}%: "
        f"{result.created} added, {result.updated} changed, {result.unchanged} unchanged."
    )


async def _prices_unpriced(args: argparse.Namespace, services: Services) -> None:
    if args.org:
        organisation = await services.organisations.get(args.org)
        missing = await services.ordering.unpriced(organisation_id=organisation.id)
    else:
        missing = await services.ordering.alert_unpriced()
    if args.json:
        out(_json([asdict(item) for item in missing]))
        return
    if not missing:
        out("Every catalog item has a price in force today.")
        return
    out(f"No price today, so not offered ({formatting.plural(len(missing), 'catalog item', 'catalog items')}):")
    for item in missing:
        out(f"{item.product_id}:{item.sku_id}  {item.term_duration} {item.billing_cycle}  {item.title}")


async def _prices_delete(args: argparse.Namespace, services: Services) -> None:
    await services.pricing.delete_list(args.list_name, actor=actor())
    out(f"Deleted price list {args.list_name}.")


async def _catalog_sync(_args: argparse.Namespace, services: Services) -> None:
    report = await services.catalog.sync(actor=actor())
    out(
        f"Catalog synced: {report.products} products, {report.skus} SKUs, {report.terms} terms; "
        f"{report.deactivated} no longer sold."
    )
    if report.unmapped:
        placed = formatting.plural(len(report.unmapped), "product was", "products were")
        out(f"{placed} placed in Other (see `cspbot alerts list`).")
    missing = await services.ordering.alert_unpriced()
    if missing:
        items = formatting.plural(len(missing), "catalog item", "catalog items")
        out(f"No global price: {items} (`cspbot prices unpriced`).")


async def _catalog_list(args: argparse.Namespace, services: Services) -> None:
    entries = await services.catalog.taxonomy()
    if args.json:
        out(_json([asdict(entry) for entry in entries]))
        return
    if not entries:
        out("The catalog cache is empty: `cspbot catalog sync`.")
    current = ""
    for entry in entries:
        heading = f"{entry.category} › {entry.product_group}"
        if heading != current:
            out(heading)
            current = heading
        marker = "" if entry.source == "default" else f"  [{entry.source}]"
        out(f"  {entry.product_id}  {entry.title}{marker}")


async def _catalog_place(args: argparse.Namespace, services: Services) -> None:
    entry = await services.catalog.place(args.product_id, args.category, args.group, actor=actor())
    out(f"{entry.title} ({entry.product_id}) is now under {entry.category} › {entry.product_group}.")


async def _catalog_reset(args: argparse.Namespace, services: Services) -> None:
    entry = await services.catalog.reset_place(args.product_id, actor=actor())
    out(f"{entry.title} ({entry.product_id}) is back under {entry.category} › {entry.product_group}.")
