"""Mailchimp Marketing v3 emulator: the account's records (``records``), the read API
(``api``) and list-member writes and tags (``api_write``)."""
