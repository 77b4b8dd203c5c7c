"""Prefect flows over the libraries (one module per stage, ``dea_daily`` chaining them) and the
``dea`` command line (``flows.cli``).

Importing any module of this package applies the Prefect settings first (``flows.settings``):
Prefect reads them once, on its first import. A flow that ends Failed on purpose (a gate verdict)
says why in its state message, without the engine's traceback (``settings.quiet_expected_failures``).
"""

from flows import settings

settings.apply()
settings.quiet_expected_failures()
