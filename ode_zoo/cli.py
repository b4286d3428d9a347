"""The ``ode-zoo`` command line.

Example:
    $ ode-zoo list
    $ ode-zoo info odenet_mnist
    $ ode-zoo demo                       # sample digits, measure bits/dim: the best MNIST flow
    $ ode-zoo demo digits                # classify test digits with the pretrained odenet_mnist
    $ ode-zoo demo spiral --epochs 200   # fit a neural ODE to a spiral
    $ ode-zoo sample ffjord_toy_8gaussians --output 8gaussians.png   # a flow's samples
    $ ode-zoo predict ode2vae_rotmnist   # a sequence model's predictions against the truth
    $ ode-zoo predict latent_ode_physionet   # test patients' observations and the model's paths
    $ ode-zoo eval odenet_mnist          # reproduce the metrics in metadata.json
    $ ode-zoo eval odenet_mnist --version 1   # ... of an older published version
    $ ode-zoo train odenet_mnist --resume --publish
    $ ode-zoo export odenet_mnist --output /tmp/serving
    $ ode-zoo --debug info odenet_mnist  # errors with their traceback

Expected errors (a bad name, a missing file, an existing run, a failed solve, ...)
print one line, `ode-zoo: error: <message>`, and exit with status 1 (`--debug`
shows the traceback); Ctrl-C exits with status 130, training after writing a
checkpoint to resume from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import ode_zoo
from ode_zoo.demos.spiral import DEFAULT_EPOCHS
from ode_zoo.training.distribute import STRATEGIES


def _parser_with(*parents: argparse.ArgumentParser) -> type:
    """An ArgumentParser class whose parsers also take the arguments of `parents`."""
    class Parser(argparse.ArgumentParser):
        def __init__(self, *args, **kwargs):
            kwargs["parents"] = [*kwargs.get("parents", ()), *parents]
            super().__init__(*args, **kwargs)
    return Parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ode-zoo`` and its subcommands.

    Example:
        >>> build_parser().parse_args(["demo", "spiral", "--epochs", "2"]).epochs
        2
    """
    parser = argparse.ArgumentParser(
        prog="ode-zoo", description="Continuous-depth models for Keras 3 / TensorFlow."
    )
    parser.add_argument("--version", action="version", version=f"ode-zoo {ode_zoo.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    # --debug after the command too (SUPPRESS: absent there, it keeps the value above)
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_parser_with(debug))
    versioned = argparse.ArgumentParser(add_help=False)
    versioned.add_argument("--version", type=_positive_int, metavar="K",
                           help="the published version (default: the newest)")

    commands.add_parser("list", help="list the zoo's models").set_defaults(handler=_list)

    info = commands.add_parser("info", parents=[versioned],
                               help="describe a zoo model and its published versions")
    info.add_argument("name")
    info.set_defaults(handler=_info)

    demo = commands.add_parser(
        "demo", help="show the zoo working: generate digits with a flow (flow), classify "
        "digits (digits) or fit a neural ODE to a spiral (spiral)",
        description="flow: load the published MNIST flow whose samples read most as digits "
        "(said as it is chosen), sample digits from seeded base noise, measure bits/dim on MNIST test digits and write both as PNG grids. digits: "
        "load the pretrained odenet_mnist, classify MNIST test digits and write them as a PNG "
        "grid. spiral: fit a neural ODE to the cubic spiral of Chen et al. (2018) and plot the "
        "true and learned trajectories.")
    demo.add_argument("which", nargs="?", choices=("flow", "digits", "spiral"), default="flow")
    demo.add_argument("--output", type=Path, help="PNG to write (default: <which>.png)")
    demo.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS,
                      help="spiral: training epochs (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0,
                      help="flow: seed of the base noise; spiral: random seed")
    demo.add_argument("--count", type=_positive_int,
                      help="flow: digits to sample and test digits to measure (default: 64); "
                      "digits: test digits to classify (default: 32)")
    demo.add_argument("--data-dir", help="flow, digits: directory holding the MNIST files")
    demo.set_defaults(handler=_demo)

    sample = commands.add_parser(
        "sample", parents=[versioned],
        help="draw a zoo flow's samples (and, for 2-D flows, its density) as a PNG",
        description="Load a published zoo flow and write a PNG of its samples next to data "
        "samples; for 2-D toy flows also the learned density.")
    sample.add_argument("name", help="zoo name or preset directory of a flow")
    sample.add_argument("--output", type=Path, help="PNG to write (default: NAME_samples.png)")
    sample.add_argument("--num", type=_positive_int, default=2000,
                        help="model samples and data points to draw (default: %(default)s)")
    sample.add_argument("--seed", type=int, default=0, help="seed of the base noise")
    sample.add_argument("--data-dir", help="directory holding the dataset files")
    sample.set_defaults(handler=_sample)

    predict = commands.add_parser(
        "predict", parents=[versioned],
        help="draw a zoo sequence model's or Latent ODE's predictions on test data as a PNG",
        description="Load a published zoo model and write a PNG of its predictions on test "
        "data: a sequence model (ODE2VAE) predicts test sequences from their first frames "
        "(truth against prediction); a Latent ODE draws test patients' observed values and "
        "its continuous path through them.")
    predict.add_argument("name", help="zoo name or preset directory of a sequence model or "
                         "Latent ODE")
    predict.add_argument("--output", type=Path,
                         help="PNG to write (default: NAME_predictions.png)")
    predict.add_argument("--num", type=_positive_int, default=4,
                         help="test sequences or patients to draw (default: %(default)s)")
    predict.add_argument("--data-dir", help="directory holding the dataset files")
    predict.set_defaults(handler=_predict)

    evaluate = commands.add_parser(
        "eval", parents=[versioned],
        help="evaluate a published zoo model and compare with its version's metadata.json")
    evaluate.add_argument("name", help="zoo name, entry folder (saved_models/NAME) or preset "
                          "directory")
    evaluate.add_argument("--split", help="dataset split (default: the config's test split)")
    evaluate.add_argument("--data-dir", help="directory holding the dataset files")
    evaluate.set_defaults(handler=_eval)

    train = commands.add_parser(
        "train", help="train a zoo model with its recipe",
        description="Train a zoo model with its recipe. An existing run directory (with a "
        "checkpoint or best weights) needs --resume or --overwrite. Ctrl-C writes a "
        "checkpoint at the current step and prints the command resuming the run.")
    train.add_argument("name", help="zoo name or path to a zoo config JSON")
    fresh = train.add_mutually_exclusive_group()
    fresh.add_argument("--resume", action="store_true",
                       help="continue from the run directory's last checkpoint")
    fresh.add_argument("--overwrite", action="store_true",
                       help="start over: delete the run directory's checkpoint, best weights, "
                       "history and logs first")
    train.add_argument("--run-dir", help="checkpoints, logs and best weights (default: runs/NAME)")
    train.add_argument("--epochs", type=_positive_int, help="override the recipe's epochs")
    train.add_argument("--strategy", choices=STRATEGIES, default="default",
                       help="tf.distribute strategy (multiworker reads TF_CONFIG)")
    train.add_argument("--data-dir", help="directory holding the dataset files")
    train.add_argument("--publish", action="store_true",
                       help="after training, publish the best weights to saved_models/NAME")
    train.set_defaults(handler=_train)

    publish = commands.add_parser(
        "publish", help="evaluate a run's best weights and write them as the next version of "
        "saved_models/NAME: preset NAME/K/ with its metadata, TF Serving export NAME/serving/K/")
    publish.add_argument("name")
    publish.add_argument("--run-dir", help="the training run (default: runs/NAME)")
    publish.add_argument("--output", type=Path,
                         help="the entry to add a version to (default: saved_models/NAME)")
    publish.add_argument("--data-dir", help="directory holding the dataset files")
    publish.set_defaults(handler=_publish)

    export = commands.add_parser(
        "export", help="export a zoo model as a TF Serving SavedModel",
        description="Write OUTPUT/K/: version K of a published model (default: the newest) "
        "keeps its number; a preset directory of your own is version 1.")
    export.add_argument("name", help="zoo name, entry folder (saved_models/NAME) or preset "
                        "directory")
    export.add_argument("--output", type=Path,
                        help="model base path for TF Serving (default: saved_models/NAME/serving)")
    export.add_argument("--version", type=_positive_int, metavar="K",
                        help="the published version to export (default: the newest)")
    export.set_defaults(handler=_export)
    return parser


def _list(args: argparse.Namespace) -> int:
    from ode_zoo.zoo.catalog import describe_all
    for line in describe_all():
        print(line)
    return 0


def _info(args: argparse.Namespace) -> int:
    from ode_zoo.zoo.catalog import describe
    print(describe(args.name, args.version))
    return 0


def _demo(args: argparse.Namespace) -> int:
    output = args.output or Path(f"{args.which}.png")
    count = {} if args.count is None else {"count": args.count}   # else the demo's default
    if args.which == "spiral":
        from ode_zoo.demos.spiral import run_spiral_demo
        result = run_spiral_demo(output, epochs=args.epochs, seed=args.seed)
        print(f"final training loss (window MSE, rk4): {result.final_loss:.3g}")
        print(f"trajectory MSE (dopri5, t in [0, 25]): {result.mse:.5f}")
    elif args.which == "flow":
        from ode_zoo.demos.mnist_flow import run_flow_demo
        result = run_flow_demo(output, seed=args.seed, data_dir=args.data_dir, **count)
        published = ("not published" if result.published_bits_per_dim is None
                     else f"{result.published_bits_per_dim:.3f}")
        print(f"{result.name} bits/dim: published (test set) {published}; measured here on "
              f"{result.count} test digits {result.bits_per_dim:.3f}")
    else:
        from ode_zoo.demos.digits import run_digits_demo
        result = run_digits_demo(output, data_dir=args.data_dir, **count)
        print(f"odenet_mnist classified {result.accuracy:.1%} of {result.count} test digits "
              f"correctly ({result.forward_nfe:.0f} ODE evaluations per batch)")
    print(f"wrote {result.output} in {result.seconds:.0f}s")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from ode_zoo.demos.flow_samples import write_samples
    output = args.output or Path(f"{Path(args.name).name}_samples.png")
    started = time.time()
    path = write_samples(ode_zoo.load(args.name, version=args.version), output, num=args.num,
                         seed=args.seed, data_dir=args.data_dir)
    print(f"wrote {path} in {time.time() - started:.0f}s")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ode_zoo.demos.predictions import write_prediction_picture
    output = args.output or Path(f"{Path(args.name).name}_predictions.png")
    started = time.time()
    result = write_prediction_picture(ode_zoo.load(args.name, version=args.version), output,
                                      num=args.num, data_dir=args.data_dir)
    print(result.summary)
    print(f"wrote {result.output} in {time.time() - started:.0f}s")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ode_zoo.zoo.evaluate import compare_metrics, evaluate_model
    model = ode_zoo.load(args.name, version=args.version)
    metrics = evaluate_model(model, model.zoo_config, split=args.split, data_dir=args.data_dir)
    print(json.dumps(metrics, indent=1))
    stored = getattr(model, "zoo_metadata", {}).get("metrics", {})
    if not stored:
        print("no published metrics to compare with")
        return 0
    reproduced, lines = compare_metrics(stored, metrics)
    print("\n".join(lines))
    print("all published metrics reproduced" if reproduced else "METRICS DIFFER from metadata.json")
    return 0 if reproduced else 1


def _train(args: argparse.Namespace) -> int:
    from ode_zoo.zoo.train import train
    run_dir = args.run_dir or f"runs/{Path(args.name).stem}"
    train(args.name, run_dir=run_dir, resume=args.resume, overwrite=args.overwrite,
          data_dir=args.data_dir, epochs=args.epochs, strategy=args.strategy)
    if args.publish:
        args.output = None
        args.run_dir = run_dir
        return _publish(args)
    return 0


def _publish(args: argparse.Namespace) -> int:
    from ode_zoo.zoo.publish import publish
    from ode_zoo.zoo.versions import SERVING
    directory = publish(args.name, run_dir=args.run_dir or f"runs/{args.name}",
                        output=args.output, data_dir=args.data_dir)
    print(f"published {args.name} version {directory.name} to {directory} (TF Serving: "
          f"{directory.parent / SERVING / directory.name})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ode_zoo.zoo.publish import export_and_check
    from ode_zoo.zoo.registry import find_preset
    model = ode_zoo.load(args.name, version=args.version)
    version = find_preset(args.name, args.version).version or 1   # a published one keeps its number
    output = args.output or Path("saved_models") / Path(args.name).name / "serving"
    path = export_and_check(model, output, version=version)
    print(f"exported {args.name} to {path} (TF Serving: --model_base_path={output.resolve()})")
    return 0


def expected_errors() -> tuple:
    """The exception types the command reports in one line: bad input (ValueError,
    TypeError), files (OSError: FileNotFoundError, FileExistsError, ...), failed
    solves (`ode_zoo.ODESolverError`) and other runtime conditions (RuntimeError),
    missing packages (ImportError) and exports TF Serving would not serve."""
    errors = (ValueError, TypeError, OSError, RuntimeError, ImportError, ode_zoo.ODESolverError)
    serving_checks = sys.modules.get("ode_zoo.zoo.serving_checks")   # loaded if it ran
    return errors + ((serving_checks.ServingCheckError,) if serving_checks else ())


def error_line(error: BaseException) -> str:
    """`ode-zoo: error: <message>` in one line: the message's first line (a
    traceback or a subprocess's output may follow it; --debug shows them).

    Example:
        >>> error_line(FileNotFoundError("no such file: runs/x/checkpoint.npz"))
        'ode-zoo: error: no such file: runs/x/checkpoint.npz'
    """
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    message = lines[0] if lines else type(error).__name__
    if len(lines) > 1:
        message += " (more with --debug)"
    return f"ode-zoo: error: {message}"


def main(argv: Sequence[str] | None = None, report_errors: Optional[bool] = None) -> int:
    """Run ``ode-zoo`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    With `report_errors` (default: when `argv` is None, i.e. the ``ode-zoo``
    command itself), an expected error (see `expected_errors`) prints one line,
    ``ode-zoo: error: <message>``, on stderr and returns 1, and Ctrl-C returns 130
    (training prints where its checkpoint went and how to resume), both without a
    traceback unless ``--debug`` was given. Otherwise the exception propagates to
    the Python caller.

    Example:
        main(["demo", "spiral", "--epochs", "1", "--output", "spiral.png"])  # returns 0
    """
    args = build_parser().parse_args(argv)
    if report_errors is None:
        report_errors = argv is None
    if not report_errors or args.debug:
        return args.handler(args)
    try:
        return args.handler(args)
    except KeyboardInterrupt as interrupt:
        from ode_zoo.training import TrainingInterrupted
        if not isinstance(interrupt, TrainingInterrupted):     # it printed its own line
            print("\node-zoo: interrupted", file=sys.stderr)
        return 130
    except expected_errors() as error:
        sys.stdout.flush()
        print(error_line(error), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
