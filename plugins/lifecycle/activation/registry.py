"""The one list of destinations. Everything else asks here.

``include/audiences.yml`` validation (target keys, identifiers), the engine (which class
sends, which consent purposes apply) and erasure propagation (who receives a removal)
read the destination classes listed in :data:`DESTINATIONS`. Adding a destination is one
module with one :class:`~lifecycle.activation.base.Destination` subclass, its line
here, and its sandbox emulator (docs/activation.md, "Adding a destination").
"""

from __future__ import annotations

from lifecycle.activation.base import Destination
from lifecycle.activation.google_ads import GoogleAdsCustomerMatch
from lifecycle.activation.hubspot import HubSpotWriteBack
from lifecycle.activation.mailchimp import MailchimpAudience
from lifecycle.activation.meta import MetaCustomAudiences

DESTINATIONS: tuple[type[Destination], ...] = (
    MetaCustomAudiences,
    GoogleAdsCustomerMatch,
    MailchimpAudience,
    HubSpotWriteBack,
)

_BY_NAME = {cls.name: cls for cls in DESTINATIONS}


def names() -> list[str]:
    return list(_BY_NAME)


def get(name: str) -> type[Destination]:
    """The destination class called ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown destination {name!r}; known: {', '.join(_BY_NAME)}") from None


def create(name: str) -> Destination:
    """A new instance (each opens its HTTP session on first use)."""
    return get(name)()
