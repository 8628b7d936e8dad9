"""``python -m celerity``: the same CLI as the ``celerity`` script."""

from celerity.cli import main

if __name__ == "__main__":
    main()
