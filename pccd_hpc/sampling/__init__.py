"""Sampling from a checkpoint, below the stages: ``generate``, ``reconstruct`` and ``evaluate`` use it.

Modules: ``checkpoint_sampler`` (load a checkpoint's EMA network, :class:`CheckpointSampler`),
``decoding`` (the decode defaults), ``reconstruction`` (the reconstruction experiment, paper Fig. 1 /
Table 1) and ``reconstruction_figure`` (its figure). The push-apart after decoding is in
:mod:`pccd_hpc.data.separation`; the sampler steps in :mod:`pccd_hpc.model.samplers`.
"""
