# GPAW build settings used by scripts/bootstrap.sh (GPAW_CONFIG points here): a serial build
# against Debian's libxc, OpenBLAS and FFTW (apt-get install libxc-dev libopenblas-dev libfftw3-dev).
# GPAW >= 25 compiles its C sources as C++; Python's default compiler (gcc) would compile them as C.
# For MPI on a cluster, build with mpi = True and compiler = 'mpicxx' instead (see docs/followup.md).
mpi = False
compiler = 'g++'
libraries = ['xc', 'openblas', 'fftw3']
