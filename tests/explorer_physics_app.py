"""The explorer with its physics view on a tiny Born-charge model and nearest-neighbour springs: the second app the
browser test serves (``/explorer_physics_app``), so that the physics tab runs in seconds without SevenNet-0 or a
shipped Born-charge model. Its numbers mean nothing physically."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import panel as pn

from explorer.app import TITLE, Explorer
from explorer.testing import SpringForceField, tiny_born_model

pn.extension("tabulator", notifications=False)
springs = SpringForceField(delay=0.6, batch_atoms=6)  # one displaced cell per batch, slow: the progress shows
physics = {"born_model": tiny_born_model({22: 2.5, 8: -1.25}), "forces": springs, "cache_dir": None}
Explorer(physics=physics).template().servable(title=TITLE)
