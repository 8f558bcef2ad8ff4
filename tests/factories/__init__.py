"""Test factories: `people` (persons as the rules see them, and a small roster) and `world`
(callers, merchants, venues, devices, staff and benefits, built through the services or the API)."""
