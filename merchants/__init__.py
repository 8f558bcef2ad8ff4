"""Merchants: partners, venues, scanner devices, staff, reports and settlement statements."""

__all__: tuple[str, ...] = ()
