"""`cogni-graphs`: `sync` writes langgraph.json from the catalog (`--check` fails on drift); `list` shows it."""

from pathlib import Path
from typing import Annotated

import typer

from cogni_graphs.catalog import CATALOG
from cogni_graphs.langgraph_json import DEFAULT_PATH, drift, write

app = typer.Typer(help="The graph catalog and the langgraph.json generated from it.", no_args_is_help=True)

PathOption = Annotated[Path, typer.Option("--path", help="langgraph.json to write or check")]


@app.command()
def sync(
    check: Annotated[
        bool, typer.Option("--check", help="Do not write; exit 1 with a diff if the file drifted")
    ] = False,
    path: PathOption = DEFAULT_PATH,
) -> None:
    """Generate langgraph.json from the catalog."""
    if check:
        diff = drift(path)
        if diff:
            typer.echo(diff, err=True, nl=False)
            typer.echo(f"{path} is out of date with the catalog: run `cogni-graphs sync`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{path} matches the catalog")
        return
    changed = write(path)
    typer.echo(f"{'wrote' if changed else 'unchanged'} {path}")


@app.command("list")
def list_graphs() -> None:
    """Print every catalog graph: name, display name, tools, module, description."""
    for name, entry in CATALOG.items():
        tools = ", ".join(entry.tool_ids) or "-"
        typer.echo(f"{name}\t{entry.display_name}\ttools: {tools}\t{entry.langgraph_path}")
        typer.echo(f"\t{entry.description}")


if __name__ == "__main__":
    app()
