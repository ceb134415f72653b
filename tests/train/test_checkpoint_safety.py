"""Issue 30 for checkpoints: sizes checked before loading, every error names the file, a full disk is a sentence."""

from __future__ import annotations

import io
import resource
import zipfile
from pathlib import Path

import pytest
import torch

from pccd_hpc.config import tiny_preset
from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.sampling.checkpoint_sampler import load_model
from pccd_hpc.model.unet import UNet
from pccd_hpc.model.checkpoint import check_storage_sizes, load_checkpoint


def _slim(path: Path, config=None) -> Path:
    torch.manual_seed(0)
    config = config or tiny_preset()
    torch.save({"ema": UNet(config.model).state_dict(), "config": config.to_dict(), "codec": CodecConfig().to_dict(),
                "step": 0}, path)
    return path


def test_compressed_storage_bomb_is_refused_without_allocating(tmp_path: Path) -> None:
    """A small file whose deflated record declares 400 MB of zeros (the probe's 3 GB, scaled down)."""
    buffer = io.BytesIO()
    torch.save({"ema": {"w": torch.zeros(4)}, "config": tiny_preset().to_dict(), "step": 0}, buffer)
    bomb = tmp_path / "bomb.pt"
    # rewrite the data record deflated, 400 MB of zeros streamed in 1 MB blocks
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            if info.filename.endswith("/data/0"):
                record = zipfile.ZipInfo(info.filename)
                record.compress_type = zipfile.ZIP_DEFLATED
                with dst.open(record, "w", force_zip64=True) as fh:
                    for _ in range(400):
                        fh.write(bytes(1 << 20))
            else:
                dst.writestr(info, src.read(info.filename))
    assert bomb.stat().st_size < 2_000_000
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=r"bomb.pt: refused, tensor record .*/data/0 is compressed"):
        load_checkpoint(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100_000  # kB: nothing near 400 MB


def test_tensor_bytes_above_the_limit_are_refused(tmp_path: Path) -> None:
    path = _slim(tmp_path / "tiny.pt")
    total = check_storage_sizes(path)
    assert total > 1000
    with pytest.raises(ValueError, match=rf"tiny.pt: refused, its tensors need .* GB, above the limit .*PCCD_MAX_CHECKPOINT_GB"):
        check_storage_sizes(path, max_bytes=total - 1)


def test_bit_flip_and_wrong_architecture_name_the_file(tmp_path: Path) -> None:
    path = _slim(tmp_path / "tiny.pt")
    data = bytearray(path.read_bytes())
    start = data.find(b"data.pkl") + 60  # inside the pickle: a flipped byte there
    for offset in range(start, start + 40):
        data[offset] ^= 0x9C
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"flipped.pt: not a readable checkpoint") as err:
        load_checkpoint(flipped)
    assert "weights_only=False" not in str(err.value) and "weights_only" not in str(err.value)
    other = tiny_preset()
    state = torch.load(path, weights_only=True)
    state["config"]["model"]["base_width"] = other.model.base_width * 2  # another architecture's config
    wrong = tmp_path / "wrong_arch.pt"
    torch.save(state, wrong)
    with pytest.raises(ValueError, match=r"wrong_arch.pt: its weights do not fit the network its own config describes"):
        load_model(wrong)


def test_disk_full_checkpoint_is_a_sentence_and_leaves_no_temp(small_tmpfs: Path) -> None:
    from pccd_hpc.io_utils import DiskFullError
    from pccd_hpc.model.checkpoint import Checkpoint, save_checkpoint

    config = tiny_preset()
    torch.manual_seed(0)
    big = {"w": torch.zeros(1_000_000)}  # 4 MB, the tmpfs holds 2 MB
    with pytest.raises(DiskFullError, match=r"no space left in .*step-00000001 .*state.pt needs about 4.0 MB"):
        save_checkpoint(small_tmpfs / "run", Checkpoint(step=1, config=config, codec=CodecConfig(), ema=big))
    assert not [p for p in small_tmpfs.rglob("*") if p.name.endswith(".tmp")]
