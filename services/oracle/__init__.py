"""The oracle service: label-only predictions of served models, metered per client, watched by detectors."""
