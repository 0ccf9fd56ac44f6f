"""``python -m openfer``: the ``openfer`` command without its console script (e.g. where openfer is not installed
and runs from ``src/``)."""

from openfer.cli import main

main()
