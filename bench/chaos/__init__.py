"""The chaos campaign: the whole topology as processes, one fault kind per batch of chats, and the
billing and run invariants checked after each batch (see bench/chaos/campaign.py)."""
