"""A campaign spread over three API keys (the Sybil attacker), through real HTTP against our oracle: the oracle
charges each of its three clients a share, and the shares add up to exactly the campaign's queries."""

from __future__ import annotations

from bbrange.attacker.campaigns.spec.builder import bbrange_target
from tests.attacker.conftest import AttackerStack, oracle_answered, submit, wait_final
from tests.conftest import OracleProcess
from tests.specs import campaign_spec


def test_a_campaign_with_three_keys_is_charged_to_three_clients(attacker: AttackerStack,
                                                                oracle: OracleProcess) -> None:
    clients = [oracle.create_client(budget=100_000, name=f"sybil-{i}") for i in range(3)]
    keys = [key for _, key in clients]
    spec = campaign_spec(target=bbrange_target(oracle.url, keys))
    assert spec["target"]["api_keys"] == keys and "api_key" not in spec["target"]
    with attacker.client() as api:
        cid = submit(api, spec)
        record = wait_final(api, cid)
        shown = api.get(f"/attacks/{cid}").text
    assert record["state"] == "succeeded", record
    assert not any(key in shown for key in keys)

    q = record["queries"]
    charged = [oracle.usage(client_id)["used"] for client_id, _ in clients]
    assert all(n > 0 for n in charged) and sum(charged) == q["total"] == 300
    assert [oracle_answered(oracle, client_id) for client_id, _ in clients] == charged
    # The record's share of each key (by its index in the spec) is what the oracle charged that key's client.
    assert [k["index"] for k in q["keys"]] == [0, 1, 2]
    assert [k["queries"] for k in q["keys"]] == charged
    assert sum(k["inputs_sent"] for k in q["keys"]) == q["inputs_sent"]
    assert all(k["dropped"] is None for k in q["keys"])
