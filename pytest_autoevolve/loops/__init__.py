"""The loops that make candidates (evolve, fine-tune) and the CI gate, over the pytest run in a subprocess."""
