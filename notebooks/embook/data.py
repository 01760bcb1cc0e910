"""The data sets shipped in the repository's ``data/`` folder."""

from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def old_faithful():
    """Old Faithful's 272 eruptions, as a float64 array of shape (272, 2).

    Columns: eruption time and waiting time to the next eruption, both in
    minutes (``data/old_faithful.csv``; citation in ``data/README.md``).
    """
    path = DATA_DIR / "old_faithful.csv"
    with path.open() as f:
        header = f.readline().strip()
        if header != "eruptions,waiting":
            raise ValueError(f"{path}: unexpected header {header!r}.")
        return np.loadtxt(f, delimiter=",")
