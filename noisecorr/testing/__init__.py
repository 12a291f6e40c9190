"""Test kits shipped with the package (the mapping conformance suite)."""
