"""HubSpot CRM v3 emulator: the portal's records (``records``), the read API (``api``)
and contact write-back with properties (``api_write``)."""
