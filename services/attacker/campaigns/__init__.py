"""The campaign service: the attacker's HTTP API, its job queue and workers, around the attack engine."""
