"""Benefits: catalog, rule language, 免申即享 matching, redemption engine and ledger, ratings."""

__all__: tuple[str, ...] = ()
