"""Table cells that `agcn eval`, `fuse` and `predict` share: accuracies and class labels."""


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def accuracies(m) -> tuple[str, str, str]:
    """Top-1, top-5 and mean class accuracy of a Metrics, as table cells."""
    return pct(m.top1), pct(m.top5), pct(m.mean_class)


def class_label(label: int, name: str) -> str:
    """`A013 tear up paper` for NTU names, `7 jump` for a label map's, `class 7` without names."""
    from ..evaluation.metrics import ntu_class_names

    if name == f"class {label}":
        return name
    ntu = ntu_class_names()
    return f"A{label + 1:03d} {name}" if label < len(ntu) and ntu[label] == name else f"{label} {name}"
