"""blackbox-range: an oracle service, an attacker service, and what they share."""

__version__ = "0.1.0"
