"""The pytest runtime: items, the run context, the trial runner, the cache, and where registries are assembled."""
