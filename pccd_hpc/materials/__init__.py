"""The science the stages share, below every stage: relaxation, phonopy set-up, VASP files, k-paths, metrics,
structure inputs and the energy/force backends that validate and followup both compute with.

Nothing here imports a stage (``tests/test_architecture.py`` checks it); stages import from here.
"""
