"""The ambient-noise workflow as a registry entry (``noisecorr registry add-builtin``).

``noisecorr enact registry:noisecorr.ambient_noise -m multiprocess -n 4`` then runs the same
graph as ``noisecorr run`` (configuration: defaults < ``$NOISECORR_*`` variables; the bundled
``station_data/`` unless ``NOISECORR_DATA`` says otherwise) and writes ``results.h5`` to the
configured output folder. The graph carries its fetch requests in a source PE, so it needs no
run inputs.
"""

from __future__ import annotations

from noisecorr.engine import ProducerPE
from noisecorr.registry import export_workflow


class Requests(ProducerPE):
    """Writes the fetch requests (one per channel and time chunk) of a workflow run."""

    def __init__(self, requests=(), name="Requests"):
        super().__init__()
        self.name = name
        self.requests = list(requests)

    def _process(self, inputs):
        for request in self.requests:
            self.write("output", request)


@export_workflow
def ambient_noise(config=None, **overrides):
    """Fetch -> Preprocess -> Normalise -> Spectra -> Whiten -> CrossCorrelate -> Stack -> WriteResults.

    Parameters
    ----------
    config : str, optional
        YAML configuration file (as ``noisecorr run --config``).
    **overrides
        Configuration values that win over the file and the environment (e.g. ``out=``).
    """
    from noisecorr.workflow import build_workflow, load_config

    workflow = build_workflow(load_config(config, overrides=overrides))
    fetch = workflow.pes["Fetch"]
    requests = [item["input"] for item in workflow.inputs[fetch]]
    workflow.graph.connect(Requests(requests), "output", fetch, "input")
    return workflow.graph
