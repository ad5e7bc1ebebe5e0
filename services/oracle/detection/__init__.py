"""The blue side: per-client detection of model extraction in the oracle's query stream.

PRADA (Juuti et al., 2019) per client and model (`prada.py`), its state bounded in Redis (`store.py`),
updated off the response path (`detector.py`), with a policy per model or client (`observe`, `flag`,
`block`; `config.py`), metrics (`metrics.py`) and an admin API (`routes.py`).
"""
