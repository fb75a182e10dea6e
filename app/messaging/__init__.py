"""Messaging primitives every feature uses: normalised envelopes, the inbox and contacts, and the outbox.

Nothing here talks to a provider: channel adapters and sending live in ``bots/``, which imports this package.
"""
