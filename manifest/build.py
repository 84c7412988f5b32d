"""Render the Teams app manifest template and pack the app package (zip) that admins upload to Teams.

Single source of truth for bot commands: the ``COMMANDS`` list below. The template ``manifest.json``
keeps ``bots[0].commandLists`` empty on purpose and ``render_manifest`` fills one command list per
scope in ``COMMAND_SCOPES`` from ``COMMANDS``; to add a command, add a tuple to ``COMMANDS`` only.

Placeholders in the template (replaced in parsed JSON values, never by text substitution, so a value
can never break the JSON): ``${MICROSOFT_APP_ID}`` (app id and bot id), ``${APP_VERSION}`` and
``${BOT_DOMAIN}`` (``validDomains`` is dropped when no domain is given).

Regenerate the icons with ``python -m manifest.build --icons``; build a package with
``python -m manifest.build <app-id> <out.zip> [--version X.Y.Z] [--bot-domain host]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import zipfile
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from PIL import Image as PILImage

MANIFEST_DIR: Final[pathlib.Path] = pathlib.Path(__file__).resolve().parent
TEMPLATE_PATH: Final[pathlib.Path] = MANIFEST_DIR / "manifest.json"
COLOR_ICON: Final[str] = "color.png"
OUTLINE_ICON: Final[str] = "outline.png"
COLOR_ICON_SIZE: Final[int] = 192
OUTLINE_ICON_SIZE: Final[int] = 32

# (title, description). Teams shows at most 10 commands per scope; titles must be <= 32 chars.
COMMANDS: Final[list[tuple[str, str]]] = [
    ("menu", "Show what I can do"),
    ("help", "How to use the bot"),
    ("cancel", "Stop what we are doing"),
    ("add tenant", "Link or create your Microsoft 365 tenant"),
    ("users", "Users of your tenant and their licences"),
    ("assign", "Assign licences to users"),
    ("buy", "Add a subscription: browse products, see the price, order"),
    ("billing", "Bills: last month, 2026-09, or a product"),
    ("subscriptions", "See and manage your subscriptions"),
    # The one-line commands (issue 19) with examples; Teams shows at most ten entries per scope.
    ("commands", "One line: add 5 seats to E3, assign E3 to diego, who has E3, offboard diego"),
]
COMMAND_SCOPES: Final[tuple[str, ...]] = ("personal", "team")

APP_ID_PLACEHOLDER: Final[str] = "${MICROSOFT_APP_ID}"
VERSION_PLACEHOLDER: Final[str] = "${APP_VERSION}"
DOMAIN_PLACEHOLDER: Final[str] = "${BOT_DOMAIN}"

_GUID_RE: Final[re.Pattern[str]] = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Same pattern as the schema's #/definitions/semver: Teams rejects anything else on upload.
_SEMVER_RE: Final[re.Pattern[str]] = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
_DOMAIN_RE: Final[re.Pattern[str]] = re.compile(r"^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?$")
# Fixed zip entry timestamp so the same inputs give a byte-identical package.
_ZIP_DATE_TIME: Final[tuple[int, int, int, int, int, int]] = (1980, 1, 1, 0, 0, 0)

# Icon palette: the accent colour of the manifest and a darker shade for depth.
_ACCENT_RGB: Final[tuple[int, int, int]] = (0x0F, 0x6C, 0xBD)
_WHITE: Final[tuple[int, int, int]] = (255, 255, 255)
_SUPERSAMPLE: Final[int] = 8


def _commands_for_manifest() -> list[dict[str, Any]]:
    """Turn ``COMMANDS`` into the manifest's ``commandLists`` (one list per scope, as Teams expects)."""
    commands = [{"title": title, "description": description} for title, description in COMMANDS]
    return [{"scopes": [scope], "commands": copy.deepcopy(commands)} for scope in COMMAND_SCOPES]


def _substitute(value: Any, replacements: dict[str, str]) -> Any:
    """Replace placeholders inside every string of a parsed JSON value (keeps the JSON well formed)."""
    if isinstance(value, str):
        for placeholder, replacement in replacements.items():
            value = value.replace(placeholder, replacement)
        return value
    if isinstance(value, list):
        return [_substitute(item, replacements) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, replacements) for key, item in value.items()}
    return value


def render_manifest(app_id: str, *, version: str = "1.0.0", bot_domain: str | None = None) -> dict[str, Any]:
    """Return the manifest for one deployment; validates inputs because Teams' upload errors are vague."""
    if not isinstance(app_id, str) or not _GUID_RE.match(app_id):
        raise ValueError(
            f"app_id must be a GUID like 00000000-0000-0000-0000-000000000000 (the bot's Microsoft App ID "
            f"from its Entra app registration); Teams rejects anything else. Got: {app_id!r}"
        )
    if not _SEMVER_RE.match(version):
        raise ValueError(f"version must be MAJOR.MINOR.PATCH (e.g. 1.0.0), got: {version!r}")
    if bot_domain is not None and not _DOMAIN_RE.match(bot_domain):
        raise ValueError(f"bot_domain must be a bare host name without scheme or path, got: {bot_domain!r}")

    template: dict[str, Any] = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    replacements = {APP_ID_PLACEHOLDER: app_id, VERSION_PLACEHOLDER: version}
    if bot_domain is not None:
        replacements[DOMAIN_PLACEHOLDER] = bot_domain
    manifest: dict[str, Any] = _substitute(template, replacements)

    if bot_domain is None:
        manifest.pop("validDomains", None)
    for bot in manifest.get("bots", []):
        bot["commandLists"] = _commands_for_manifest()
    return manifest


def _zip_entry(name: str) -> zipfile.ZipInfo:
    """Zip entry with fixed metadata so package bytes depend only on content."""
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def build_app_package(
    app_id: str,
    out_path: pathlib.Path,
    *,
    version: str = "1.0.0",
    bot_domain: str | None = None,
) -> pathlib.Path:
    """Write the Teams app package (manifest + both icons at the zip root, as Teams requires)."""
    manifest = render_manifest(app_id, version=version, bot_domain=bot_domain)
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    with zipfile.ZipFile(out_path, "w") as archive:
        archive.writestr(_zip_entry("manifest.json"), manifest_bytes)
        for icon in (COLOR_ICON, OUTLINE_ICON):
            archive.writestr(_zip_entry(icon), (MANIFEST_DIR / icon).read_bytes())
    return out_path


def _cloud_mask(size: int) -> PILImage.Image:
    """Anti-aliased cloud silhouette (mode "L") filling a ``size`` square; drawn big, then downscaled."""
    from PIL import Image, ImageDraw

    big = size * _SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)

    def box(cx: float, cy: float, r: float) -> tuple[int, int, int, int]:
        return (round((cx - r) * big), round((cy - r) * big), round((cx + r) * big), round((cy + r) * big))

    # Coordinates as fractions of the canvas so both icon sizes share one shape.
    draw.ellipse(box(0.30, 0.58, 0.18), fill=255)
    draw.ellipse(box(0.53, 0.44, 0.25), fill=255)
    draw.ellipse(box(0.74, 0.60, 0.16), fill=255)
    draw.rounded_rectangle(
        (round(0.12 * big), round(0.56 * big), round(0.90 * big), round(0.76 * big)),
        radius=round(0.10 * big),
        fill=255,
    )
    return mask.resize((size, size), Image.Resampling.LANCZOS)


def _bars_mask(size: int) -> PILImage.Image:
    """Three rising bars (subscriptions/bills) to cut into or paint over the cloud."""
    from PIL import Image, ImageDraw

    big = size * _SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    bottom = 0.68
    for left, top in ((0.34, 0.56), (0.47, 0.47), (0.60, 0.38)):
        draw.rounded_rectangle(
            (round(left * big), round(top * big), round((left + 0.08) * big), round(bottom * big)),
            radius=round(0.02 * big),
            fill=255,
        )
    return mask.resize((size, size), Image.Resampling.LANCZOS)


def draw_icons(folder: pathlib.Path = MANIFEST_DIR) -> tuple[pathlib.Path, pathlib.Path]:
    """Regenerate both icons; kept as code so the artwork can be changed reproducibly, not by hand.

    Pillow is imported lazily (here and in the mask helpers) because it is a dev/test dependency only:
    packaging just copies the committed PNGs.
    """
    from PIL import Image, ImageChops

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    # Colour icon: opaque accent background, white cloud, accent bars on the cloud.
    color = Image.new("RGB", (COLOR_ICON_SIZE, COLOR_ICON_SIZE), _ACCENT_RGB)
    color.paste(_WHITE, (0, 0), _cloud_mask(COLOR_ICON_SIZE))
    color.paste(_ACCENT_RGB, (0, 0), _bars_mask(COLOR_ICON_SIZE))
    color_path = folder / COLOR_ICON
    color.save(color_path, format="PNG", optimize=True)

    # Outline icon: Teams requires white on transparent, so colour is constant white and only alpha varies.
    # A 2px transparent margin keeps the glyph clear of the edge as Teams' guidelines ask.
    inner = OUTLINE_ICON_SIZE - 4
    alpha_inner = ImageChops.subtract(_cloud_mask(inner), _bars_mask(inner))
    alpha = Image.new("L", (OUTLINE_ICON_SIZE, OUTLINE_ICON_SIZE), 0)
    alpha.paste(alpha_inner, (2, 2))
    outline = Image.new("RGBA", (OUTLINE_ICON_SIZE, OUTLINE_ICON_SIZE), (*_WHITE, 0))
    outline.putalpha(alpha)
    outline_path = folder / OUTLINE_ICON
    outline.save(outline_path, format="PNG", optimize=True)
    return color_path, outline_path


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point for packaging (and regenerating icons) without writing Python."""
    parser = argparse.ArgumentParser(prog="python -m manifest.build", description=__doc__.splitlines()[0])
    parser.add_argument("--icons", action="store_true", help="regenerate color.png and outline.png")
    parser.add_argument("app_id", nargs="?", help="the bot's Microsoft App ID (GUID)")
    parser.add_argument("out", nargs="?", type=pathlib.Path, help="path of the .zip to write")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--bot-domain", default=None)
    args = parser.parse_args(argv)
    if args.icons:
        draw_icons(MANIFEST_DIR)
    if args.app_id or args.out:
        if not (args.app_id and args.out):
            parser.error("both app_id and out are required to build a package")
        try:
            build_app_package(args.app_id, args.out, version=args.version, bot_domain=args.bot_domain)
        except ValueError as exc:
            parser.error(str(exc))
    elif not args.icons:
        parser.error("nothing to do: give app_id and out, or --icons")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
