import gc

from app import create_app
from services.settings import Settings
from tests.conftest import message, runtime_of
from tests.fakes import card_of, card_text


async def test_menu_reaches_the_connector(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    response = await client.post("/api/messages", json=message("menu", service_url=url))
    assert response.status == 202
    await fake.wait_for(1)
    card = card_of(fake.messages()[0])
    assert card is not None
    assert "Contoso" in card_text(card)


async def test_the_embedded_default_starts_the_sandbox_and_points_the_client_at_it(aiohttp_client, tmp_path):
    """No Partner Center settings: the app opens the built-in sandbox itself (its own SQLite file)."""
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
    client = await aiohttp_client(create_app(settings))
    partner_center = runtime_of(client).services.partner_center
    assert await partner_center.domain_is_taken("contoso.onmicrosoft.com")
    assert not await partner_center.domain_is_taken("surely-free-4711.onmicrosoft.com")
    assert (tmp_path / "bot.partner-center-sandbox.sqlite3").exists()
    health = await (await client.get("/healthz")).json()
    assert health["partner_center"] == "sandbox"


async def test_the_started_app_runs_with_the_garbage_collector_on_and_its_start_up_heap_frozen(make_bot):
    """`python app.py` loads its modules with the collector off; the started app turns it on again."""
    gc.disable()
    try:
        await make_bot()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    finally:
        gc.enable()
