"""Development commands: benchmarks, corpus tools and measurements; not needed to train or predict."""
