"""spectsynth: synthetic SPECT/PET from real MRI anatomy, and the studies built on it.

The package holds every piece of logic of the workflow; the Snakemake rules under
``workflow/`` only wire it.  Importing the package has no side effects (no CUDA call,
no global torch settings, no downloads).
"""

__version__ = "0.1.0"
