"""The attacks a campaign spec may name: each one a spec model (what `crafting` accepts for its `method`) and
the factory of its engine attack, in one registry. Torch-free: the attacker API validates specs with it."""
