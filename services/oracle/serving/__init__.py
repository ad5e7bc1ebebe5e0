"""Answering a query: the one path from a key and a batch to labels, the predictor and its backends, dynamic
batching, idempotent replays."""
