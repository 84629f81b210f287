"""Search algorithms: pure searchers (settings, history and an explicit RNG in; suggestions out)."""
