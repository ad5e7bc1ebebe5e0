"""A decision-based campaign through HTTP, end to end: the local range (Redis, the oracle, the attacker API and one
worker as processes), one campaign of N MNIST test images with Q queries each, and what it cost.

Prints the wall time from submission to the final state, the campaign's queries per phase beside what the oracle
charged the key (they must be equal), and the median distortion at each checkpoint. Issue 20's goal: a 100-image,
1K-query HopSkipJump campaign in under 3 minutes on 2 cores.

    python benchmarks/query_campaign_http.py                        # hopskipjump, L2, 100 images x 1,000 queries
    python benchmarks/query_campaign_http.py --method rays --norm linf
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer
from rich.console import Console

from bbrange.attacker.campaigns.client import AttackerClient
from bbrange.attacker.campaigns.spec.builder import bbrange_target, campaign_spec
from bbrange.local_range import LocalRange
from bbrange.shared.oracle_admin import OracleAdmin

console = Console()


def main(method: str = typer.Option("hopskipjump", help="A decision-based attack: hopskipjump, sign_opt, rays"),
         norm: str = typer.Option("l2", help="l2 or linf (as the attack supports)"),
         images: int = typer.Option(100, help="Evaluation images attacked (the test images after S0)"),
         queries: int = typer.Option(1_000, help="Queries per image"),
         model_dir: Path = typer.Option(Path("models"), help="Where the mnist oracle is (trained if missing)"),
         device: str = typer.Option("cpu")) -> None:
    checkpoints = [c for c in (100, 200, 500, 1_000, 2_000, 5_000, 10_000) if c <= queries]
    crafting = {"method": method, "norm": norm, "max_queries_per_image": queries, "checkpoints": checkpoints}
    console.print(f"{method} {norm}, {images} MNIST test images x {queries:,} queries, one worker, device {device}")
    with tempfile.TemporaryDirectory() as workdir, \
            LocalRange(Path(workdir), model_dir, workers=1, device=device, console=console,
                       client_budget=images * (queries + 10) + 10_000) as endpoints:
        spec = campaign_spec(bbrange_target(endpoints.oracle_url, endpoints.api_key), crafting=crafting,
                             eval_size=images)
        with AttackerClient(endpoints.attacker_url, endpoints.user_token) as client:
            started = time.perf_counter()
            record = client.follow(client.submit(spec).id, poll_s=0.5)
            wall = time.perf_counter() - started
        with OracleAdmin(endpoints.oracle_url, endpoints.admin_token) as oracle:
            charged = oracle.client(endpoints.client_id).used
    q = record.queries
    console.print(f"state {record.state.value}; wall from submission to the end {wall:.1f} s")
    console.print(f"queries: agreement {q.agreement}, attack {q.attack}, baseline {q.baseline}, total {q.total}; "
                  f"the oracle charged {charged} ({'equal' if charged == q.total else 'NOT EQUAL'})")
    results = record.results.model_dump() if record.results is not None else {}
    curve = results.get("distortion_by_queries") or {}
    for at, median in zip(curve.get("queries", []), curve.get("median", []), strict=False):
        console.print(f"  median {curve.get('norm', norm).upper()} at {at:>6,} queries: {median:.3f}")
    console.print(f"success {results.get('transfer_rate', 0):.2%}; goal (hopskipjump, 100 x 1,000): under 180 s, "
                  f"{'met' if wall < 180 else 'missed'} at {wall:.1f} s")


if __name__ == "__main__":
    typer.run(main)
