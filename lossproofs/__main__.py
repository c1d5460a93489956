"""``python -m lossproofs <command>``: the same as the ``lossproofs`` command."""

from lossproofs.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
