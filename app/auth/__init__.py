"""Who may do what: service keys and their scopes, end users' JWTs, the token policy and
its room patterns, and minting AccessTokens under it."""
