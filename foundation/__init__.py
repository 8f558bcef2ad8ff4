"""The ground every package stands on: it imports nothing of ours.

Errors and their categories, the shared vocabulary, settings, struct bases, paging, connections
and the audit writer. Everything above (identity, merchants, benefits, api, the runtime) may
import from here; nothing here imports from them (import-linter checks it in the test suite).
"""
