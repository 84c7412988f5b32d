"""`cspbot tenant show|resend-credentials`: an organisation's Microsoft 365 tenant."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cli.output import actor, add_json_flag, command_parser, out, to_json

if TYPE_CHECKING:
    from cli.output import Commands
    from services.container import Services

TENANT_HELP = "an organisation's Microsoft 365 tenant"


def add_tenant(commands: Commands) -> None:
    tenant = command_parser(commands, "tenant", TENANT_HELP).add_subparsers(
        dest="action", required=True, metavar="{show,resend-credentials}"
    )
    tenant_show = tenant.add_parser("show", help="the tenant (created or linked), the MCA and the credentials e-mail")
    tenant_show.add_argument("slug", metavar="SLUG")
    add_json_flag(tenant_show)
    tenant_show.set_defaults(handler=_tenant_show)
    resend = tenant.add_parser(
        "resend-credentials", help="deliver the first admin's sign-in e-mail that the mail server refused"
    )
    resend.add_argument("slug", metavar="SLUG")
    resend.set_defaults(handler=_tenant_resend)


async def _tenant_show(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.get(args.slug)
    view = await services.tenants.service_of(org.id)
    if view is None:
        out(f"{org.slug} has no Microsoft 365 tenant yet (the admin types 'add tenant' in Teams).")
        return
    rows = {
        "status": view.status,
        "origin": view.origin,
        "domain": view.domain,
        "customer_id": view.customer_id,
        "by": view.requested_by,
        "at": (view.completed_at or view.requested_at).isoformat(),
        "admin_user": view.admin_user,
        "credentials_email": view.credentials_status,
        "mail_to": view.mail_to,
        "mca": f"{view.mca_name} <{view.mca_email}> {view.mca_accepted_at.isoformat()}"
        if view.mca_accepted_at
        else "not recorded",
    }
    if args.json:
        out(to_json(rows))
        return
    for key, value in rows.items():
        out(f"{key:18} {value if value not in (None, '') else '-'}")


async def _tenant_resend(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.get(args.slug)
    view = await services.tenants.resend_credentials(org.id, actor=actor())
    out(f"Sent the sign-in details for {view.domain} to {view.mail_to}.")
