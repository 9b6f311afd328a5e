"""Signals other apps listen to (e.g. outgoing webhooks), sent after the change committed."""

from django.dispatch import Signal

# sender=Response, response=…, created=bool
response_saved = Signal()
# sender=Customer, customer=…, source=str
customer_unsubscribed = Signal()
