"""cxloop's own outgoing webhooks: events of a workspace posted, signed, to its endpoints.

``events.emit`` records the event in the caller's transaction (an outbox); ``delivery``
posts what is due from the heartbeat. See docs/webhooks.md.
"""
