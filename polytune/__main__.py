"""``python -m polytune`` is the ``polytune`` command."""

from polytune.cli import main

main()
