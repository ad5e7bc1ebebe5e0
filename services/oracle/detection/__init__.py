"""The blue side: detection of model extraction and query-based attacks in the oracle's query stream.

PRADA (Juuti et al., 2019) per client and model (`prada.py`), its state bounded in Redis (`store.py`);
Blacklight (Li et al., 2022) over every client's queries of a model (`blacklight.py`), its state shared and
bounded in Redis (`blacklight_store.py`, updated by one Lua call: `blacklight_script.py`) and matched in each
process's copy (`blacklight_index.py`); both updated off the response path (`detector.py`), with a policy per
model or client (`observe`, `flag`, `block`; `config.py`), metrics (`metrics.py`) and an admin API (`routes.py`).
"""
