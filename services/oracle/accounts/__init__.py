"""Who may query and how much: clients, hashed API keys, budgets and throttling, in Redis."""
