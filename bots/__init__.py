"""Everything that talks to messaging providers: webhooks, channel adapters, the dialogue engine, the outbox."""
