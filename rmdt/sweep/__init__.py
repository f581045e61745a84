"""Sweeps of tasks x models x seeds (x a grid of overrides) on Ray Tune: ``python -m rmdt.sweep FILE``.

- ``spec``: the sweep file, checked and expanded into runs (imports no Ray);
- ``trainable``: one run (train unless evaluated, resuming its checkpoints; evaluate), and the Tune
  function trainable around it;
- ``launch``: Ray started here or joined, Tune's Tuner over the pending runs, the progress bar;
- ``table``: results.json, table.md and the PNG;
- ``__main__``: the command line.

Ray is the optional extra ``sweep`` (``pip install -c constraints.txt -e ".[sweep]"``); only
``launch`` imports it.
"""
from rmdt.sweep.spec import Run, Sweep, load_sweep

__all__ = ["Run", "Sweep", "load_sweep"]
