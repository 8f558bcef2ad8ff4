"""Runtime of the chongjun service: configuration, embedded servers, logging and the CLI.

Domain packages (`identity`, `benefits`, `merchants`) may import `foundation.errors` and
`foundation.settings`; nothing here imports a domain package at module level except the CLI.
"""
