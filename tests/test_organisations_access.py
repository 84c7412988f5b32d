"""Organisations, members, roles and caller resolution on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from services.access import AccessService, ChannelIdentity
from services.audit import entries_for
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services.roles import ROLE_PERMISSIONS, Permission, Role

TENANT = "11111111-2222-3333-4444-555555555555"
PROFILE = {
    "name": "Fabrikam Inc",
    "address_line1": "500 Main St",
    "city": "Seattle",
    "state": "WA",
    "postal_code": "98101",
    "country": "us",
    "contact_first_name": "Dana",
    "contact_last_name": "Lee",
    "contact_email": "Dana@Fabrikam.com",
}


async def _org(services, slug="fabrikam"):
    await services.organisations.create(slug, PROFILE, actor="operator:test")
    await services.organisations.link_teams_tenant(slug, TENANT, actor="operator:test")


async def test_profile_is_stored_normalised_and_every_change_is_audited(services):
    await _org(services)
    org = await services.organisations.update("fabrikam", {"city": "Redmond"}, actor="operator:test")
    assert org.country == "US" and org.contact_email == "dana@fabrikam.com" and org.city == "Redmond"
    assert org.teams_tenant_id == TENANT
    async with services.sessions() as session:
        actions = [e.action for e in await entries_for(session, org.id)]
    assert set(actions) == {"organisation.create", "organisation.update", "organisation.link_tenant"}


async def test_bad_input_changes_nothing(services):
    await _org(services)
    with pytest.raises(InvalidInput):
        await services.organisations.update("fabrikam", {"country": "USA"}, actor="x")
    with pytest.raises(InvalidInput):
        await services.organisations.update("fabrikam", {"no_such_field": "1"}, actor="x")
    with pytest.raises(InvalidInput):
        await services.organisations.create("Bad Slug!", PROFILE, actor="x")
    with pytest.raises(Conflict):
        await services.organisations.create("fabrikam", PROFILE, actor="x")
    with pytest.raises(NotFound):
        await services.organisations.get("nobody")
    assert (await services.organisations.get("fabrikam")).country == "US"


async def test_a_tenant_links_to_one_organisation_only(services):
    await _org(services)
    await services.organisations.create("other", {"name": "Other"}, actor="x")
    with pytest.raises(Conflict):
        await services.organisations.link_teams_tenant("other", TENANT, actor="x")


async def test_members_have_a_set_of_roles(services):
    await _org(services)
    member = await services.organisations.add_member(
        "fabrikam", "Pat@Fabrikam.com", ["admin", "ADMIN", "billing"], actor="x"
    )
    assert member.email == "pat@fabrikam.com" and member.roles == {"admin", "billing"}
    with pytest.raises(Conflict):
        await services.organisations.add_member("fabrikam", "pat@fabrikam.com", ["approver"], actor="x")
    with pytest.raises(InvalidInput, match="admin, approver, billing"):
        await services.organisations.add_member("fabrikam", "sam@fabrikam.com", ["owner"], actor="x")
    with pytest.raises(InvalidInput):
        await services.organisations.add_member("fabrikam", "not-an-email", ["admin"], actor="x")
    changed = await services.organisations.set_roles(
        "fabrikam", "pat@fabrikam.com", add=["approver"], remove=["billing"], actor="x"
    )
    assert changed.roles == {"admin", "approver"}
    with pytest.raises(InvalidInput, match="without a role"):
        await services.organisations.set_roles("fabrikam", "pat@fabrikam.com", remove=["admin", "approver"], actor="x")
    await services.organisations.remove_member("fabrikam", "pat@fabrikam.com", actor="x")
    assert (await services.organisations.get("fabrikam")).members == ()


def test_role_table_matches_the_spec():
    assert ROLE_PERMISSIONS[Role.ADMIN] == {
        Permission.MANAGE_SERVICES,
        Permission.REQUEST_SUSPENSION,
        Permission.READ_SUBSCRIPTIONS,
        Permission.READ_BILLING,
    }
    assert ROLE_PERMISSIONS[Role.APPROVER] == {Permission.DECIDE_SUSPENSION, Permission.READ_SUBSCRIPTIONS}
    assert ROLE_PERMISSIONS[Role.BILLING] == {Permission.READ_SUBSCRIPTIONS, Permission.READ_BILLING}


async def test_callers_resolve_by_tenant_and_object_id(services):
    await _org(services)
    await services.organisations.add_member(
        "fabrikam", "pat@fabrikam.com", ["billing"], actor="x", aad_object_id="aad-pat", channel_user_id="29:pat"
    )
    strict = AccessService(services.sessions, allow_channel_user_id=False)
    caller = await strict.resolve(ChannelIdentity(TENANT.upper(), "aad-pat", "29:pat"))
    assert caller is not None and caller.roles == {"billing"} and caller.organisation_name == "Fabrikam Inc"
    # Same object id from another tenant is someone else.
    assert await strict.resolve(ChannelIdentity("other-tenant", "aad-pat", "29:pat")) is None
    # Channel user id alone is trusted only in the local unauthenticated mode.
    assert await strict.resolve(ChannelIdentity(TENANT, None, "29:pat")) is None
    local = AccessService(services.sessions, allow_channel_user_id=True)
    assert (await local.resolve(ChannelIdentity(TENANT, None, "29:pat"))) is not None
    caller.require(Permission.READ_BILLING)
    with pytest.raises(PermissionDenied, match="Only an admin"):
        caller.require(Permission.MANAGE_SERVICES)


async def test_first_contact_binds_a_member_registered_by_email(services):
    await _org(services)
    await services.organisations.add_member("fabrikam", "pat@fabrikam.com", ["admin"], actor="x")
    access = AccessService(services.sessions, allow_channel_user_id=False)
    identity = ChannelIdentity(TENANT, "aad-pat", "29:pat", "Pat")
    assert await access.resolve(identity) is None
    # An e-mail of another organisation's tenant does not bind.
    assert await access.bind_by_email(ChannelIdentity("other-tenant", "aad-pat", "29:pat"), "pat@fabrikam.com") is None
    bound = await access.bind_by_email(identity, "PAT@fabrikam.com")
    assert bound is not None and bound.display_name == "Pat"
    assert (await access.resolve(identity)).member_id == bound.member_id
    # Once bound, another object id cannot take the member over.
    assert await access.bind_by_email(ChannelIdentity(TENANT, "aad-mallory", "29:m"), "pat@fabrikam.com") is None


async def test_alerts_deduplicate_and_acknowledge(services):
    first = await services.alerts.raise_alert("unpriced_product", "CFQ7TTC0LH18 has no price", dedup_key="p:1")
    again = await services.alerts.raise_alert("unpriced_product", "CFQ7TTC0LH18 has no price", dedup_key="p:1")
    assert again.id == first.id and again.occurrences == 2
    assert await services.alerts.open_count() == 1
    await services.alerts.acknowledge(first.id, actor="operator:test")
    assert await services.alerts.open_count() == 0
    with pytest.raises(InvalidInput):
        await services.alerts.acknowledge(first.id, actor="operator:test")
    with pytest.raises(NotFound):
        await services.alerts.acknowledge(999, actor="operator:test")


async def test_idempotency_keys_return_the_first_resource(services):
    first = await services.idempotency.claim(
        "card-1", purpose="create_tenant", organisation_id=1, resource_type="job", resource_id="7"
    )
    again = await services.idempotency.claim(
        "card-1", purpose="create_tenant", organisation_id=1, resource_type="job", resource_id="8"
    )
    assert first.first_use and not again.first_use and again.resource_id == "7"
    with pytest.raises(Conflict):
        await services.idempotency.claim(
            "card-1", purpose="create_tenant", organisation_id=2, resource_type="job", resource_id="9"
        )


async def test_profile_fields_follow_microsofts_limits(services):
    await _org(services)
    for changes, field in (
        ({"domain_prefix": "a" * 28}, "domain_prefix"),
        ({"domain_prefix": "1contoso"}, "domain_prefix"),
        ({"domain_prefix": "contoso-demo"}, "domain_prefix"),
        ({"postal_code": "9" * 21}, "postal_code"),
        ({"allow_self_approval": "perhaps"}, "allow_self_approval"),
    ):
        with pytest.raises(InvalidInput) as raised:
            await services.organisations.update("fabrikam", changes, actor="x")
        assert raised.value.field == field
    org = await services.organisations.update(
        "fabrikam", {"domain_prefix": "Fabrikam2026", "allow_self_approval": "false"}, actor="x"
    )
    assert org.domain_prefix == "Fabrikam2026" and org.allow_self_approval is False
    for slug in ("a-", "a--b", "-a", "x"):
        with pytest.raises(InvalidInput):
            await services.organisations.create(slug, {"name": "N"}, actor="x")
    with pytest.raises(InvalidInput, match="tenant id"):
        await services.organisations.link_teams_tenant("fabrikam", "foo", actor="x")


async def test_unchanged_roles_write_no_audit_entry(services):
    await _org(services)
    await services.organisations.add_member("fabrikam", "pat@fabrikam.com", ["admin"], actor="x")
    org = await services.organisations.get("fabrikam")
    async with services.sessions() as session:
        before = len(await entries_for(session, org.id))
    await services.organisations.set_roles("fabrikam", "pat@fabrikam.com", add=["admin"], actor="x")
    async with services.sessions() as session:
        assert len(await entries_for(session, org.id)) == before


async def test_the_partner_center_customer_is_set_once_and_audited(services, demo_customer) -> None:
    org = demo_customer
    assert org.partner_center_customer_id
    again = await services.organisations.set_partner_center_customer(org.id, org.partner_center_customer_id, actor="t")
    assert again.partner_center_customer_id == org.partner_center_customer_id  # idempotent
    with pytest.raises(Conflict):
        await services.organisations.set_partner_center_customer(
            org.id, "11111111-2222-3333-4444-555555555555", actor="t"
        )
    with pytest.raises(InvalidInput):
        await services.organisations.set_partner_center_customer(org.id, "not-a-guid", actor="t")
    assert (await services.organisations.get_by_id(org.id)).partner_center_customer_id == org.partner_center_customer_id


async def test_a_remembered_caller_is_forgotten_when_roles_change_here_and_expires_otherwise(services) -> None:
    now = [1000.0]
    access = AccessService(services.sessions, allow_channel_user_id=True, cache_seconds=2.0, clock=lambda: now[0])
    organisations = type(services.organisations)(services.sessions, on_access_change=access.forget)
    await organisations.create("fabrikam", {"name": "Fabrikam"}, actor="op")
    await organisations.add_member("fabrikam", "ann@fabrikam.example", roles=["admin"], actor="op")
    await organisations.link_teams_tenant("fabrikam", "72f988bf-86f1-41af-91ab-2d7cd011db47", actor="op")
    await services.access.bind_by_email(
        ChannelIdentity("72f988bf-86f1-41af-91ab-2d7cd011db47", "aad-ann", "29:ann"), "ann@fabrikam.example"
    )
    identity = ChannelIdentity("72f988bf-86f1-41af-91ab-2d7cd011db47", "aad-ann", "29:ann")
    assert (await access.resolve(identity)).roles == {"admin"}
    # A change through this process's service is seen at once.
    await organisations.set_roles("fabrikam", "ann@fabrikam.example", add=["billing"], remove=["admin"], actor="op")
    assert (await access.resolve(identity)).roles == {"billing"}
    # A change made elsewhere (another process's service) is seen once the memory expires.
    await services.organisations.remove_member("fabrikam", "ann@fabrikam.example", actor="op")
    assert await access.resolve(identity) is not None  # still remembered
    now[0] += 2.01
    assert await access.resolve(identity) is None
