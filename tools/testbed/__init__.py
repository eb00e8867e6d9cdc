"""The Linux test bed for winbits, by concern: ``common`` (paths, logging, the Wine
environment), ``provision`` (apt, the Windows Pythons, venvs, npm, the Wine prefix),
``build`` (cross-compiling), ``wheel`` (packing and installing the wheel), ``runner``
(running Windows Python: run, test, demo, bench) and ``lint``. ``tools/wine.py`` is the
command line over them; docs/testbed.md says how it all works."""
