"""Benefits, in four layers: the catalog (rules, matching), redemption (the scan engine, the
ledger and what is reported from it), ratings (好差评 on ledger entries) and stats (第二十三条
operating statistics over all three).

Import the layer you need: `from benefits import catalog`, `from benefits import redemption`,
`from benefits import ratings`, `from benefits import stats`. A layer imports only the ones before it (import-linter checks).
"""
