"""`bbrange attack users …`: the attacker's admin creates, lists and revokes users (the admin token comes from
BBRANGE_ATTACK_ADMIN_TOKEN, as the API's own)."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from bbrange.shared.cli_requests import request_or_exit

app = typer.Typer(help="Users of the attacker API and their tokens (admin).", no_args_is_help=True)
console = Console()

ApiOpt = Annotated[str, typer.Option("--api", envvar="BBRANGE_ATTACK_API_URL", help="Attacker API base URL.")]
AdminTokenOpt = Annotated[str, typer.Option("--admin-token", envvar="BBRANGE_ATTACK_ADMIN_TOKEN",
                                            help="The attacker's admin token.")]


def _admin(api: str, token: str) -> httpx.Client:
    if not token:
        console.print("[red]set BBRANGE_ATTACK_ADMIN_TOKEN (or --admin-token)[/]")
        raise typer.Exit(2)
    return httpx.Client(base_url=api, timeout=30, headers={"Authorization": f"Bearer {token}"})


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    return request_or_exit(client, method, path, "attacker API", console, **kwargs)


@app.command()
def create(
    name: Annotated[str, typer.Option(help="A label for people: a team, a person.")],
    api: ApiOpt = "http://127.0.0.1:8100",
    admin_token: AdminTokenOpt = "",
) -> None:
    """Create a user; prints its token once (give it to the user as BBRANGE_ATTACK_TOKEN)."""
    with _admin(api, admin_token) as client:
        created = _request(client, "POST", "/users", json={"name": name})
    console.print(f"user {created['user']['id']} ({name}) created; token (shown once):")
    print(created["token"])


@app.command("list")
def list_users(api: ApiOpt = "http://127.0.0.1:8100", admin_token: AdminTokenOpt = "") -> None:
    """Every user, revoked ones included."""
    with _admin(api, admin_token) as client:
        users = _request(client, "GET", "/users")
    table = Table("id", "name", "created", "revoked")
    for u in users:
        table.add_row(u["id"], u["name"], u["created_at"], "yes" if u["revoked"] else "")
    console.print(table)


@app.command()
def revoke(user_id: str, api: ApiOpt = "http://127.0.0.1:8100", admin_token: AdminTokenOpt = "") -> None:
    """Revoke a user's token; its queued campaigns are cancelled (user_revoked), the others are kept."""
    with _admin(api, admin_token) as client:
        _request(client, "POST", f"/users/{user_id}/revoke")
    console.print(f"user {user_id} revoked")
