"""The soak (``make soak``, tests/test_soak.py): minutes of mixed load against ``gateway serve --workers 2``
on Redis. `mix` draws the requests, `watch` runs the load and samples the processes, `report` judges."""
