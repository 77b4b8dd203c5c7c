"""Prefect flows over the libraries (one module per stage, ``dea_daily`` chaining them) and the
``dea`` command line (``flows.cli``).

Importing any module of this package applies the Prefect settings first (``flows.settings``):
Prefect reads them once, on its first import.
"""

from flows import settings

settings.apply()
