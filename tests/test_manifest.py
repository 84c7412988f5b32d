"""Teams app manifest and package checks, validated offline against the schema shipped in node_modules."""

from __future__ import annotations

import io
import json
import pathlib
import re
import zipfile
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from PIL import Image
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT4

from manifest import build

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SCHEMAS_ROOT = REPO_ROOT / "node_modules" / "@microsoft" / "app-manifest" / "build" / "json-schemas" / "teams"
SCHEMA_FILE = "MicrosoftTeams.schema.json"
SCHEMA_URL = "https://developer.microsoft.com/en-us/json-schemas/teams/v{version}/MicrosoftTeams.schema.json"
APP_ID = "6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b"
_VERSION_DIR = re.compile(r"^v(\d+)\.(\d+)$")


def _schema_versions() -> list[tuple[int, int]]:
    """Released (non-DevPreview) schema versions in the installed npm package, oldest first."""
    if not SCHEMAS_ROOT.is_dir():
        pytest.fail(
            f"Teams manifest schemas not found at {SCHEMAS_ROOT}. "
            "Run `npm ci` in the repository root to install @microsoft/app-manifest."
        )
    versions = []
    for child in SCHEMAS_ROOT.iterdir():
        match = _VERSION_DIR.match(child.name)
        if match and (child / SCHEMA_FILE).is_file():
            versions.append((int(match.group(1)), int(match.group(2))))
    if not versions:
        pytest.fail(f"No released schema versions under {SCHEMAS_ROOT}; run `npm ci`.")
    return sorted(versions)


def _newest_version() -> str:
    major, minor = _schema_versions()[-1]
    return f"{major}.{minor}"


def _schema_dir(version: str) -> pathlib.Path:
    return SCHEMAS_ROOT / f"v{version}"


@pytest.fixture(scope="module")
def validator() -> Any:
    """A validator for the manifest's declared schema version that resolves every $ref from disk only."""
    version = json.loads(build.TEMPLATE_PATH.read_text(encoding="utf-8"))["manifestVersion"]
    folder = _schema_dir(version)
    _schema_versions()  # fails with the `npm ci` hint when the package is missing
    if not (folder / SCHEMA_FILE).is_file():
        pytest.fail(f"Schema for manifestVersion {version} not found at {folder}; run `npm ci`.")
    schema = json.loads((folder / SCHEMA_FILE).read_text(encoding="utf-8"))

    def retrieve(uri: str) -> Resource:
        # Map any reference (relative name, file URI or developer.microsoft.com URL) to a sibling file.
        name = pathlib.PurePosixPath(urlsplit(uri).path).name
        local = folder / name
        if not name or not local.is_file():
            raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # never fall back to the network
        return Resource.from_contents(json.loads(local.read_text(encoding="utf-8")), default_specification=DRAFT4)

    root = Resource.from_contents(schema, default_specification=DRAFT4)
    registry: Registry = Registry(retrieve=retrieve).with_resources(  # type: ignore[call-arg]
        [(SCHEMA_URL.format(version=version), root), ((folder / SCHEMA_FILE).as_uri(), root)]
    )
    cls = jsonschema.validators.validator_for(schema)
    # The schema uses ECMA-262 regexes (\p{L}) that Python's `re` cannot compile, so skip format checks here.
    cls.check_schema(schema, format_checker=None)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def _assert_valid(validator: Any, manifest: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    messages = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    assert not messages, "manifest does not match the Teams schema:\n" + "\n".join(messages)
    # Draft-04 has no `const`, so the schema's manifestVersion pin is not enforced by the validator.
    assert manifest["manifestVersion"] == validator.schema["properties"]["manifestVersion"]["const"]


def test_template_uses_newest_released_schema() -> None:
    newest = _newest_version()
    template = json.loads(build.TEMPLATE_PATH.read_text(encoding="utf-8"))
    hint = f"@microsoft/app-manifest now ships schema v{newest}: bump manifest/manifest.json"
    assert template["manifestVersion"] == newest, hint
    assert template["$schema"] == SCHEMA_URL.format(version=newest), hint


@pytest.mark.parametrize("bot_domain", [None, "bot.example.com"])
def test_rendered_manifest_validates(validator: Any, bot_domain: str | None) -> None:
    manifest = build.render_manifest(APP_ID, version="2.3.4", bot_domain=bot_domain)
    _assert_valid(validator, manifest)
    assert "${" not in json.dumps(manifest), "unreplaced placeholder"
    assert manifest["id"] == APP_ID
    assert manifest["bots"][0]["botId"] == APP_ID
    assert manifest["version"] == "2.3.4"
    if bot_domain is None:
        assert "validDomains" not in manifest
    else:
        assert manifest["validDomains"] == [bot_domain]


def test_rendered_manifest_content() -> None:
    manifest = build.render_manifest(APP_ID)
    assert manifest["name"] == {"short": "CSP Self-Service", "full": "CSP Self-Service for Microsoft 365"}
    assert len(manifest["description"]["short"]) <= 80
    assert manifest["developer"]["name"] == "Your CSP reseller"
    for key in ("websiteUrl", "privacyUrl", "termsOfUseUrl"):
        assert manifest["developer"][key].startswith("https://example.com/")
    bot = manifest["bots"][0]
    assert {"personal", "team"} <= set(bot["scopes"])
    assert bot["supportsFiles"] is True  # billing exports go to a 1:1 chat through file consent
    (extension,) = manifest["composeExtensions"]
    assert extension["botId"] == APP_ID and extension["commands"][0]["type"] == "query"
    assert bot["isNotificationOnly"] is False
    assert manifest["permissions"] == ["identity", "messageTeamMembers"]
    assert manifest["icons"] == {"color": build.COLOR_ICON, "outline": build.OUTLINE_ICON}
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", manifest["accentColor"])


def test_validator_is_not_vacuous(validator: Any) -> None:
    manifest = build.render_manifest(APP_ID)
    manifest["bots"][0]["scopes"] = ["nowhere"]
    del manifest["developer"]
    assert len(list(validator.iter_errors(manifest))) >= 2


@pytest.mark.parametrize(
    "app_id",
    [
        "",
        "not-a-guid",
        "6f1c2b3a4d5e4f608a9b0c1d2e3f4a5b",
        "{6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b}",
        "${MICROSOFT_APP_ID}",
    ],
)
def test_non_guid_app_id_is_rejected(app_id: str, tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="GUID"):
        build.render_manifest(app_id)
    with pytest.raises(ValueError, match="GUID"):
        build.build_app_package(app_id, tmp_path / "app.zip")
    assert not (tmp_path / "app.zip").exists()


@pytest.mark.parametrize("kwargs", [{"version": "1.0"}, {"version": "v1.0.0"}, {"bot_domain": "https://x.io/"}])
def test_bad_version_or_domain_is_rejected(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        build.render_manifest(APP_ID, **kwargs)


def test_app_package(validator: Any, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "nested" / "dir" / "app.zip"
    result = build.build_app_package(APP_ID, out, version="1.2.3", bot_domain="bot.example.com")
    assert result == out and out.is_file()
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(archive.read("manifest.json").decode("utf-8"))
        for icon in (build.COLOR_ICON, build.OUTLINE_ICON):
            assert archive.read(icon) == (build.MANIFEST_DIR / icon).read_bytes()
    _assert_valid(validator, manifest)
    assert manifest["id"] == APP_ID
    assert manifest["bots"][0]["botId"] == APP_ID
    assert manifest["version"] == "1.2.3"


def test_app_package_is_deterministic(tmp_path: pathlib.Path) -> None:
    first = build.build_app_package(APP_ID, tmp_path / "a.zip").read_bytes()
    second = build.build_app_package(APP_ID, tmp_path / "b.zip").read_bytes()
    assert first == second


def _check_color_icon(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.size == (192, 192)
        rgba = image.convert("RGBA")
    assert rgba.getchannel("A").getextrema() == (255, 255), "colour icon must be fully opaque"
    assert len(set(rgba.getdata())) > 2, "colour icon should have a visible glyph"


def _check_outline_icon(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.size == (32, 32)
        rgba = image.convert("RGBA")
    pixels = list(rgba.getdata())
    assert any(a == 0 for *_, a in pixels), "outline icon needs a transparent background"
    assert any(a == 255 for *_, a in pixels), "outline icon needs a visible glyph"
    assert pixels[0][3] == 0, "outline icon background (top-left corner) must be transparent"
    not_white = {p for p in pixels if p[3] > 0 and p[:3] != (255, 255, 255)}
    assert not not_white, f"outline icon may only contain white or fully transparent pixels: {not_white}"


def test_committed_icons() -> None:
    _check_color_icon((build.MANIFEST_DIR / build.COLOR_ICON).read_bytes())
    _check_outline_icon((build.MANIFEST_DIR / build.OUTLINE_ICON).read_bytes())


def test_draw_icons_generates_valid_icons(tmp_path: pathlib.Path) -> None:
    color, outline = build.draw_icons(tmp_path / "icons")
    assert color == tmp_path / "icons" / build.COLOR_ICON
    assert outline == tmp_path / "icons" / build.OUTLINE_ICON
    _check_color_icon(color.read_bytes())
    _check_outline_icon(outline.read_bytes())


def test_commands() -> None:
    # Single source of truth: the template must not carry its own commands.
    template = json.loads(build.TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert all(not bot.get("commandLists") for bot in template["bots"]), "add commands to build.COMMANDS"

    command_lists = build.render_manifest(APP_ID)["bots"][0]["commandLists"]
    assert sorted(scope for entry in command_lists for scope in entry["scopes"]) == ["personal", "team"]
    for entry in command_lists:
        titles = [command["title"] for command in entry["commands"]]
        assert titles == [title for title, _ in build.COMMANDS]
        assert len(titles) == len(set(titles)), "command titles must be unique"
        assert len(titles) <= 10, "Teams shows at most 10 commands per scope"
        for command in entry["commands"]:
            assert 0 < len(command["title"]) <= 32
            # The schema allows spaces; the title is what Teams inserts, so it must be a command as typed.
            assert command["title"] == " ".join(command["title"].lower().split())
            assert 0 < len(command["description"]) <= 128
    assert {"menu", "help", "cancel"} <= {title for title, _ in build.COMMANDS}


async def test_every_manifest_command_starts_something(sqlite_services: Any) -> None:
    """Each command Teams offers in its command list is a built-in word or starts one of the bot's tasks,
    and the message extension's command is the one the billing dialog answers."""
    from app import bot_tasks
    from bot.handler import CANCEL_WORDS, HELP_WORDS, MENU_WORDS
    from dialogs.billing import SEARCH_COMMAND
    from dialogs.catalogue import TaskCatalogue

    catalogue = TaskCatalogue(bot_tasks(sqlite_services))
    built_in = MENU_WORDS | HELP_WORDS | CANCEL_WORDS
    dead = [title for title, _ in build.COMMANDS if title not in built_in and catalogue.find(title) is None]
    assert dead == [], f"manifest commands that start nothing: {dead}"
    (extension,) = build.render_manifest(APP_ID)["composeExtensions"]
    (command,) = extension["commands"]
    assert command["id"] == SEARCH_COMMAND
    assert "composeExtension/query" in catalogue.invokes()
