"""The ``fwbench`` typer application. Commands live one per module; none imports a framework."""

from __future__ import annotations

import typer

from fwbench import __version__

app = typer.Typer(
    name="fwbench",
    help="Run the same deep-learning workloads through PyTorch, TensorFlow and Keras, and compare them fairly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"fwbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """fwbench: fair, reproducible framework benchmarks."""


def _plain_argument_help() -> None:
    """Arguments read as their metavar (``BASELINE``, ``RESULTS...``), not typer's ``{BASELINE}`` and ``<path>``
    or ``<list[Path]>``: every argument of fwbench names its metavar, and its help says what it takes."""
    from typer.core import TyperArgument

    def usage_name(self: TyperArgument) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    def help_name(self: TyperArgument) -> str:
        return self.display_name_raw + ("..." if self.nargs != 1 else "")

    TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
    TyperArgument._rich_display_name = help_name  # type: ignore[method-assign]
    TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]


def _register() -> None:
    from fwbench.cli import (ab_cmd, compare_cmd, env_cmd, export_cmd, history_cmd, list_cmd, probe_cmd, report_cmd,
                             run_cmd, show_cmd)

    for module in (run_cmd, list_cmd, env_cmd, compare_cmd, ab_cmd, history_cmd, export_cmd, report_cmd, show_cmd,
                   probe_cmd):
        module.register(app)


_plain_argument_help()
_register()


def main() -> None:
    """Console-script entry point."""
    app()
