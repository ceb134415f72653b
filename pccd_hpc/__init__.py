"""pccd_hpc: point-cloud crystal diffusion (PCCD) as a resumable HPC batch pipeline."""

__version__ = "0.1.0"
