"""Benefits, in three layers: the catalog (rules, matching), redemption (the scan engine, the
ledger and what is reported from it) and ratings (好差评 on ledger entries).

Import the layer you need: `from benefits import catalog`, `from benefits import redemption`,
`from benefits import ratings`. A layer imports only the ones before it (import-linter checks).
"""
