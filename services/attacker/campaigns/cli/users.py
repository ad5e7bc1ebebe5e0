"""`bbrange attack users …`: the attacker's admin creates, lists and revokes users (the admin token comes from
BBRANGE_ATTACK_ADMIN_TOKEN, as the API's own)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bbrange.attacker.campaigns.client import AttackerClient
from bbrange.shared.cli_requests import exit_on_refusal

app = typer.Typer(help="Users of the attacker API and their tokens (admin).", no_args_is_help=True)
console = Console()

ApiOpt = Annotated[str, typer.Option("--api", envvar="BBRANGE_ATTACK_API_URL", help="Attacker API base URL.")]
AdminTokenOpt = Annotated[str, typer.Option("--admin-token", envvar="BBRANGE_ATTACK_ADMIN_TOKEN",
                                            help="The attacker's admin token.")]


def _admin(api: str, token: str) -> AttackerClient:
    if not token:
        console.print("[red]set BBRANGE_ATTACK_ADMIN_TOKEN (or --admin-token)[/]")
        raise typer.Exit(2)
    return AttackerClient(api, token)


@app.command()
def create(
    name: Annotated[str, typer.Option(help="A label for people: a team, a person.")],
    api: ApiOpt = "http://127.0.0.1:8100",
    admin_token: AdminTokenOpt = "",
) -> None:
    """Create a user; prints its token once (give it to the user as BBRANGE_ATTACK_TOKEN)."""
    with _admin(api, admin_token) as client, exit_on_refusal(console):
        created = client.create_user(name)
    console.print(f"user {created.user.id} ({name}) created; token (shown once):")
    print(created.token)


@app.command("list")
def list_users(api: ApiOpt = "http://127.0.0.1:8100", admin_token: AdminTokenOpt = "") -> None:
    """Every user, revoked ones included."""
    with _admin(api, admin_token) as client, exit_on_refusal(console):
        users = client.users()
    table = Table("id", "name", "created", "revoked")
    for u in users:
        table.add_row(u.id, u.name, u.created_at.isoformat(), "yes" if u.revoked else "")
    console.print(table)


@app.command()
def revoke(user_id: str, api: ApiOpt = "http://127.0.0.1:8100", admin_token: AdminTokenOpt = "") -> None:
    """Revoke a user's token; its queued campaigns are cancelled (user_revoked), the others are kept."""
    with _admin(api, admin_token) as client, exit_on_refusal(console):
        client.revoke_user(user_id)
    console.print(f"user {user_id} revoked")
