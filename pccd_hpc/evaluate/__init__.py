"""One evaluation of a checkpoint on held-out data, the same every time (``python -m pccd_hpc.launch evaluate``).

Modules: ``config`` (settings), ``parts`` (resumable per-part results), ``denovo`` (sampling and the
generation metrics), ``coverage`` (CDVAE's COV-R / COV-P), ``reconstruction`` (paper Fig. 1 / Table 1),
``page`` (evaluate.md and its figures), ``stage`` (runs the parts), ``cli`` (the subcommand).
"""
