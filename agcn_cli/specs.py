"""Locate the files in `data_specs/` (layouts, splits, missing-sample lists, class names).

In a source checkout or editable install they live in the repository's top-level
`data_specs/`; a built wheel carries a copy inside the package as `agcn_cli/data_specs/`.
"""

from pathlib import Path

from .errors import AgcnError

_CANDIDATES = (
    Path(__file__).resolve().parent / "data_specs",
    Path(__file__).resolve().parent.parent / "data_specs",
)


def spec_dir() -> Path:
    for path in _CANDIDATES:
        if path.is_dir():
            return path
    raise AgcnError(f"data_specs/ not found (looked in {', '.join(map(str, _CANDIDATES))}); reinstall agcn")


def spec_path(*parts: str) -> Path:
    path = spec_dir().joinpath(*parts)
    if not path.exists():
        raise AgcnError(f"{path}: missing from data_specs/; reinstall agcn")
    return path
