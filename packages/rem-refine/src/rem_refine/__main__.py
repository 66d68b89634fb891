"""``python -m rem_refine ...`` runs `rem refine` (the entry point torchrun launches per rank)."""

from __future__ import annotations

import sys

from rem_core.errors import RemError
from rem_refine.cli_refine import refine


def main() -> None:
    try:
        refine.main(args=sys.argv[1:], prog_name="rem refine", standalone_mode=False)
    except RemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except BaseException as exc:  # click's own usage errors keep their exit codes
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
