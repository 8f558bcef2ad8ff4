"""Benchmarks that print a figure and the command that reproduces it (`chongjun bench ...`).

Tools that use the runtime, not part of it: `roster` (the roster import), `matching` (免申即享
matching latency), `scans` (`POST /v1/scans` over real HTTP). Only the CLI imports them; they do
not import the demo seed (the CLI hands the matching bench its catalog), so either can change
alone. import-linter checks this (pyproject.toml, contract `runtime-layers`).
"""
