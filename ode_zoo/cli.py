"""The ``ode-zoo`` command line.

Example:
    $ ode-zoo --version
    $ ode-zoo demo --output spiral.png --epochs 200 --seed 0
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import ode_zoo
from ode_zoo.demos.spiral import DEFAULT_EPOCHS, run_spiral_demo


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ode-zoo`` and its subcommands.

    Example:
        >>> build_parser().parse_args(["demo", "--epochs", "2"]).epochs
        2
    """
    parser = argparse.ArgumentParser(
        prog="ode-zoo", description="Continuous-depth models for Keras 3 / TensorFlow."
    )
    parser.add_argument("--version", action="version", version=f"ode-zoo {ode_zoo.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="fit a neural ODE to a 2-D spiral and plot it",
        description="Fit a neural ODE to the cubic spiral of Chen et al. (2018), write a PNG "
        "of the true and learned trajectories and print the trajectory MSE.",
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("spiral.png"),
        help="PNG to write (default: %(default)s)",
    )
    demo.add_argument(
        "--epochs",
        type=_positive_int,
        default=DEFAULT_EPOCHS,
        help="training epochs (default: %(default)s)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.set_defaults(handler=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    result = run_spiral_demo(args.output, epochs=args.epochs, seed=args.seed)
    print(f"final training loss (window MSE, rk4): {result.final_loss:.3g}")
    print(f"trajectory MSE (dopri5, t in [0, 25]): {result.mse:.5f}")
    print(f"wrote {result.output} in {result.seconds:.0f}s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ode-zoo`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Example:
        main(["demo", "--epochs", "1", "--output", "spiral.png"])  # trains, plots, returns 0
    """
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
