"""Start a training run from another model's weights (fine-tuning), checked against the new network.

``train`` with ``init_from`` set (``--init-from CKPT``) builds the network its own config names and
fills it with the EMA weights of ``CKPT`` (a run folder, a ``step-N/`` folder or an exported file such
as the bundled model). The optimizer, learning-rate schedule and step count start anew. The two must
describe the same problem -- the same codec, denoiser kind and diffusion process -- and every weight
must fit; the changes allowed are extra input channels of the first convolution (the U-Net's
``periodic_features``) and the number of sites as a condition (``site_condition``: its embedding and
projection). The new input weights start at zero, so the new network computes exactly what the
source did.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from pccd_hpc.config import RunConfig
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.model.factory import SITE_WEIGHTS_PREFIX
from pccd_hpc.model.checkpoint import Checkpoint

log = logging.getLogger(__name__)

_GROWABLE_INPUT = "init_conv.weight"
"""The only weight whose shape may differ: (out, in, kh, kw) with more input channels in the new network."""
_PROCESS_FIELDS = ("timesteps", "schedule", "beta_start", "beta_end", "prediction")
"""Diffusion settings the weights are tied to (loss settings may change when fine-tuning)."""


def load_initial_weights(model: nn.Module, source: Checkpoint, config: RunConfig, data_codec: CodecConfig) -> None:
    """Copy ``source``'s EMA weights into ``model`` (built from ``config``) for a run on data encoded with ``data_codec``.

    ``ValueError`` naming the checkpoint and the mismatch when the codec, the denoiser kind, the
    diffusion process or a weight's shape disagree.
    """
    where = source.path or "checkpoint"
    if source.codec.to_dict() != data_codec.to_dict():
        raise ValueError(f"{where}: its codec {source.codec.to_dict()} differs from the training data's "
                         f"{data_codec.to_dict()}; fine-tune only on data encoded the same way")
    if source.config.denoiser != config.denoiser:
        raise ValueError(f"{where}: a {source.config.denoiser!r} network cannot start a {config.denoiser!r} run")
    for name in _PROCESS_FIELDS:
        old, new = getattr(source.config.diffusion, name), getattr(config.diffusion, name)
        if old != new:
            raise ValueError(f"{where}: diffusion.{name} is {old!r} there and {new!r} here; the weights are tied to it")
    target = model.state_dict()
    # the site condition's weights may be new: kept as built (the embedding reaches the output only through
    # its projection, which starts at zero)
    added = sorted(key for key in set(target) - set(source.ema) if key.startswith(SITE_WEIGHTS_PREFIX))
    missing = sorted(set(target) - set(source.ema) - set(added))
    unexpected = sorted(set(source.ema) - set(target))
    if missing or unexpected:
        raise ValueError(f"{where}: network layouts differ (missing here: {missing[:5]}, not in the new network: "
                         f"{unexpected[:5]}); the model config must match the source's")
    loaded: dict[str, torch.Tensor] = {}
    for key in added:
        loaded[key] = target[key]
        log.info("%s: %s added (site condition)", where, key)
    for key, new in target.items():
        if key in added:
            continue
        old = source.ema[key].to(new.dtype)
        if old.shape == new.shape:
            loaded[key] = old
        elif key.endswith(_GROWABLE_INPUT) and _grows_input(old.shape, new.shape):
            grown = torch.zeros_like(new)
            grown[:, : old.shape[1]] = old
            loaded[key] = grown
            log.info("%s: %d input channels added to %s, starting at zero", where, new.shape[1] - old.shape[1], key)
        else:
            raise ValueError(f"{where}: weight {key} has shape {tuple(old.shape)} there and {tuple(new.shape)} "
                             f"here; the model config must match the source's")
    model.load_state_dict(loaded)
    log.info("initialised from %s (step %d)", where, source.step)


def _grows_input(old: torch.Size, new: torch.Size) -> bool:
    return len(old) == len(new) == 4 and new[1] > old[1] and old[0] == new[0] and old[2:] == new[2:]
