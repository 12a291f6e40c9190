"""Synthetic ambient-noise networks with a known answer.

:class:`SyntheticNetwork` generates continuous records deterministically from
a seed; :func:`write_network` writes them as an SDS miniSEED archive with a
StationXML inventory and the true travel times (``truth.csv``).
"""

from .archive import SynthArchive, read_truth, write_network
from .generator import SynthBatch, SynthStation, SyntheticNetwork, band_taper
from .geometry import EARTH_RADIUS_KM, azimuth_deg, great_circle_km
from .response import build_inventory, sts2_response

__all__ = ["write_network", "read_truth", "SynthArchive", "SyntheticNetwork", "SynthStation", "SynthBatch", "band_taper",
           "great_circle_km", "azimuth_deg", "EARTH_RADIUS_KM",
           "sts2_response", "build_inventory"]
