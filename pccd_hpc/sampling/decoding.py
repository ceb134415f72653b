"""How sampled tensors are read back into crystals: one set of decode defaults for generate, reconstruct and evaluate.

The push-apart that follows decoding is :func:`pccd_hpc.data.separation.decode_separated` (its default
separation :data:`pccd_hpc.data.separation.PUSH_APART_FACTOR`).
"""

from __future__ import annotations

from pccd_hpc.data.codec import CodecConfig

DECODE_METHOD = "blocks"
"""Decode by the codec's row layout (DBSCAN where no atom count fits), unless told otherwise."""
DECODE_MIN_POINTS = 4
"""Points an atom needs when decoding, unless told otherwise: half of the 8 points each atom of a 16-site crystal owns."""


def decode_codec(codec: CodecConfig, eps_ang: float | None, min_points: int | None,
                 method: str | None = None) -> CodecConfig:
    """The checkpoint's codec with the decode-time settings (clustering, decode method) overridden where given."""
    overrides: dict = {} if method is None else {"decode_method": method}
    if eps_ang is not None:
        overrides["cluster_eps_ang"] = eps_ang
    if min_points is not None:
        overrides["cluster_min_points"] = min_points
    return CodecConfig.from_dict({**codec.to_dict(), **overrides})


def default_decode_codec(codec: CodecConfig) -> CodecConfig:
    """``codec`` with the default decode settings (:data:`DECODE_METHOD`, :data:`DECODE_MIN_POINTS`; its own DBSCAN radius)."""
    return decode_codec(codec, None, DECODE_MIN_POINTS, DECODE_METHOD)
