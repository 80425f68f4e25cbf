"""`python -m studio <command>`: generate, post, queue, ... (see studio/cli/)."""

from studio.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
