"""Licence plates: localise, rectify and read plates, vote the readings of a pass into one
transit, check watch lists, keep pseudonymised transit records and masked evidence."""
