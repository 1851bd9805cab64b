"""Google Ads Customer Match offline user data jobs emulator (``api``)."""
