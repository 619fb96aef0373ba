"""Model providers: the `Model` protocol, one module per provider, and a lazy registry."""
