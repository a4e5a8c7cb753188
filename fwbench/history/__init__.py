"""A performance history across commits, and the change points in it (``fwbench history``).

* :mod:`.store`: the history folder: a copy of each results file plus an index keyed by commit and date;
* :mod:`.series`: per (workload, runner, device) cell, one point per commit (centre step time with its CI);
* :mod:`.changepoints`: step detection over a list of numbers (PELT from ``ruptures``), pure;
* :mod:`.judge`: the check's verdict per cell and its exit code, pure;
* :mod:`.render`: markdown, HTML and plain-text strings, pure; :mod:`.plots`: the PNG trend plots.

``docs/history.md`` documents the commands, the method and its parameters.
"""
