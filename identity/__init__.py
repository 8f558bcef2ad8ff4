"""Identity: city identity providers, 崇军码 keys and codes, sessions, people registry, roster import."""

__all__: tuple[str, ...] = ()
