"""The attacker API's routes, one router per resource."""
