"""Domain logic. No Flask request objects and no vendor SDKs here: the API and the bots call these."""
