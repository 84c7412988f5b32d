from tests.conftest import message
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
