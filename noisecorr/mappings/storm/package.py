"""Write a deployable Storm topology for a workflow graph.

Layout of a package directory::

    topology.yaml        Flux definition: spouts, bolts, streams, config
    topology.jar         resources/ zipped as a jar (no Java classes; Flux comes with --jars
                         or from the pom.xml build)
    graph.json           human-readable summary: PEs, classes, streams, groupings, parallelism
    pom.xml              Maven build of a self-contained jar (flux-core + flux-wrappers + resources/)
    README.md            how to build, submit, run locally and collect the outputs
    resources/           what Storm extracts on every worker and runs the components in
        graph.pkl        the GraphSpec, pickled (cloudpickle; PE prototypes inside)
        layout.json      components, streams, fields and groupings (see .layout)
        noisecorr/       a copy of this package's Python sources (``vendor=True``), so workers
                         only need Python 3 with numpy and cloudpickle
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import yaml

import noisecorr
from noisecorr.engine.errors import GraphError
from noisecorr.engine.plan import make_plan

from .component import OUTPUT_DIR_KEY
from .flux import component_command, flux_definition, validate_flux
from .layout import make_layout, topology_name

#: Topology config written into the Flux file (Storm keys; values chosen for batch workflows).
DEFAULT_CONFIG = {
    "topology.workers": 1,
    # Back-pressure: a spout is not asked for more while this many of its tuple trees are open.
    "topology.max.spout.pending": 1000,
    # A PE call may take long (a day of cross-correlations); Storm would otherwise fail the
    # tuple tree after 30 s and kill a silent subprocess after the supervisor's worker timeout.
    "topology.message.timeout.secs": 600,
    "topology.subprocess.timeout.secs": 600,
}
STORM_VERSION = "2.6.4"
FLUX_MAIN = "org.apache.storm.flux.Flux"


@dataclass(frozen=True)
class Package:
    """Paths of a written topology package."""

    root: Path
    yaml: Path
    jar: Path
    resources: Path
    layout: dict
    output_dir: str

    @property
    def name(self):
        return self.layout["topology"]


def default_tasks(processes):
    """Worker slots the plan places instances on (``-n``, else CPUs); instance counts, and so
    each component's parallelism, come from the graph alone (:func:`~noisecorr.engine.plan.instance_counts`)."""
    return processes or os.cpu_count() or 1


def package(spec, out_dir, processes=None, name=None, python="python3", output_dir=None, vendor=True,
            workers=1, config=None):
    """Write the topology of ``spec`` into ``out_dir`` and return a :class:`Package`.

    Parameters
    ----------
    spec : GraphSpec
    out_dir : path
        Created if missing; files of an earlier package there are replaced.
    processes : int, optional
        Worker slots (default: the number of CPUs). Each component's parallelism is its PE's
        instance count (:func:`~noisecorr.engine.plan.instance_counts`: the ``numprocesses``
        hint, else 1), the same as under every other mapping.
    name : str, optional
        Topology name (default ``noisecorr-<first PE names>``).
    python : str
        The interpreter workers run the components with.
    output_dir : str, optional
        Where tasks write outputs and errors (``noisecorr.output.dir``; default
        ``<out_dir>/outputs``). On a cluster it must be a directory every supervisor can write,
        a shared file system, for the outputs to be collected in one place.
    vendor : bool
        Copy the ``noisecorr`` sources into ``resources/``.
    workers : int
        ``topology.workers`` (worker JVMs).
    config : dict, optional
        More Storm config entries.
    """
    root = Path(out_dir).absolute()
    plan = make_plan(spec, default_tasks(processes))
    layout = make_layout(spec, plan.instances, topology_name(spec, name))
    output_dir = str(Path(output_dir).absolute()) if output_dir else str(root / "outputs")
    conf = dict(DEFAULT_CONFIG, **{"topology.workers": int(workers)})
    conf.update(config or {})
    conf[OUTPUT_DIR_KEY] = output_dir
    topology = flux_definition(layout, conf, python=python)
    validate_flux(topology)

    resources = root / "resources"
    if resources.exists():
        shutil.rmtree(resources)
    resources.mkdir(parents=True)
    try:
        spec_bytes = cloudpickle.dumps(spec, protocol=5)
    except Exception as exc:
        raise GraphError(f"the graph description cannot be pickled for Storm: {exc}") from exc
    (resources / "graph.pkl").write_bytes(spec_bytes)
    (resources / "layout.json").write_text(json.dumps(layout, indent=1, sort_keys=True) + "\n")
    if vendor:
        _vendor(resources / "noisecorr")
    yaml_path = root / "topology.yaml"
    header = (f"# Storm topology generated by noisecorr {noisecorr.__version__}; see README.md.\n"
              f"# Components run: {' '.join(component_command(python, '<PE>'))}\n")
    head = {k: topology[k] for k in ("name", "config")}
    body = {k: topology[k] for k in ("spouts", "bolts", "streams")}
    yaml_path.write_text(header + yaml.safe_dump(head, sort_keys=False, default_flow_style=False)
                         + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120))
    (root / "graph.json").write_text(json.dumps(summary(spec, layout), indent=1) + "\n")
    jar = root / "topology.jar"
    _write_jar(jar, resources)
    (root / "pom.xml").write_text(_POM.replace("@NAME@", layout["topology"]).replace("@STORM@", STORM_VERSION))
    (root / "README.md").write_text(readme(layout, output_dir, python, vendor))
    return Package(root=root, yaml=yaml_path, jar=jar, resources=resources, layout=layout, output_dir=output_dir)


def summary(spec, layout):
    """The JSON summary of the graph description (``graph.json``)."""
    pes = []
    for pe in spec.pes:
        info = layout["pes"][pe.name]
        iters = spec.iterations.get(pe.name)
        pes.append({
            "name": pe.name,
            "class": pe.cls,
            "component": info["component"],
            "kind": info["kind"],
            "parallelism": info["parallelism"],
            "numprocesses": pe.numprocesses,
            "inputs": {p: list(g[:1]) + ([list(g[1])] if len(g) > 1 else []) for p, g in pe.inputs.items()},
            "outputs": {p: {"stream": o["stream"], "eos": o["eos"], "fields": o["fields"]}
                        for p, o in info["outputs"].items()},
            "iterations": iters if isinstance(iters, int) or iters is None else {"input_dicts": len(iters)},
            "doc": pe.doc.splitlines()[0] if pe.doc else "",
        })
    edges = [{"source": e.source, "port": e.source_port, "dest": e.dest, "dest_port": e.dest_port,
              "grouping": list(e.grouping[:1]) + ([list(e.grouping[1])] if len(e.grouping) > 1 else [])}
             for e in spec.edges]
    return {"noisecorr": noisecorr.__version__, "topology": layout["topology"], "pes": pes, "edges": edges,
            "unconnected_outputs": [list(k) for k in spec.unconnected_outputs()],
            "encoding": "tuple fields [key, payload, key_1...]: key = stable_hash(group_key(item, keys)); "
                        "payload = base64(pickle protocol 5 of the item)"}


def _vendor(dest):
    src = Path(noisecorr.__file__).parent
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if "__pycache__" in rel.parts:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _write_jar(jar, resources):
    stamp = (1980, 1, 1, 0, 0, 0)  # reproducible archive
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("META-INF/MANIFEST.MF", stamp), "Manifest-Version: 1.0\r\nCreated-By: noisecorr\r\n\r\n")
        for path in sorted(resources.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                info = zipfile.ZipInfo(str(Path("resources") / path.relative_to(resources)), stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, path.read_bytes())


def readme(layout, output_dir, python, vendor):
    name = layout["topology"]
    rows = "\n".join(
        f"| `{info['component']}` | {pe} | {info['kind']} | {info['parallelism']} |"
        for pe, info in layout["pes"].items()
    )
    return f"""# Storm topology `{name}`

Generated by noisecorr {noisecorr.__version__} (`noisecorr storm package`). Every PE of the
workflow is a Storm multilang shell component (`FluxShellSpout` for PEs without inputs,
`FluxShellBolt` for the others) running `{python} -m noisecorr.mappings.storm.component
--spec graph.pkl --pe NAME` in the topology's extracted `resources/` directory.

| component | PE | kind | parallelism |
|---|---|---|---|
{rows}

## Files

- `topology.yaml`: the Flux topology definition.
- `resources/graph.pkl`, `resources/layout.json`: the pickled graph description and the
  stream layout the components read; `graph.json`: a readable summary.
- `resources/noisecorr/`: {"a copy of the noisecorr sources" if vendor else "(not vendored: install noisecorr on every worker)"}.
- `topology.jar`: `resources/` as a jar; `pom.xml`: a Maven build of a self-contained jar.

## Requirements on every supervisor

`{python}` (Python >= 3.10) with `numpy` and `cloudpickle` installed, plus the modules that
define the workflow's PE classes unless they were pickled by value (graphs loaded from a
`FILE.py` are). Storm 2.x with Flux.

## Build the jar

Either use `topology.jar` as it is and give Storm the Flux jars of your Storm version
(Maven Central: `org.apache.storm:flux-core:<version>`, `org.apache.storm:flux-wrappers:<version>`)
with `--jars`, or build one jar with Maven (set `storm.version` in `pom.xml` first):

    mvn -q package        # -> target/{name}-1.0.jar (flux-core, flux-wrappers, resources/)

To rebuild `topology.jar` by hand: `jar cf topology.jar resources` (from this directory).

## Run

On a cluster (Storm 1.x and 2.x):

    storm jar --jars flux-core-<version>.jar,flux-wrappers-<version>.jar topology.jar {FLUX_MAIN} --remote topology.yaml
    storm jar target/{name}-1.0.jar {FLUX_MAIN} --remote topology.yaml

Locally, Storm 1.x:

    storm jar target/{name}-1.0.jar {FLUX_MAIN} --local --sleep 600000 topology.yaml

Locally, Storm 2.x (Flux ignores `--local`/`--remote` there; `storm local` runs an
in-process cluster for `--local-ttl` seconds):

    storm local --local-ttl 600 target/{name}-1.0.jar {FLUX_MAIN} topology.yaml

Check the definition without running it: add `--dry-run` after `{FLUX_MAIN}`.

`noisecorr.output.dir` in `topology.yaml` is `{output_dir}`; change it to a directory
every supervisor can write (a shared file system), before submitting.

## Outputs, end and errors

Finite workflows end: after its last iteration a spout runs `postprocess()` and emits an
end-of-stream tuple on each `<port>__eos` stream (ALL-grouped); a bolt task finishes when
every upstream task's marker arrived, and passes its own on. Each task then writes
`<component>.<index>.result` into `noisecorr.output.dir` (items of unconnected outputs,
counters). Once every task has, merge them with

    noisecorr storm collect PACKAGE_DIR

(`PACKAGE_DIR`: the directory holding this README), and kill the topology (`storm kill {name}`): Storm
topologies do not stop by themselves. A failing PE writes `<component>.<index>.error` (PE,
instance, item and traceback), logs it to the worker log and fails the tuple; `collect`
reports it.
"""


_POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Builds a self-contained topology jar: Flux (core + wrappers) and resources/. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>noisecorr.topology</groupId>
  <artifactId>@NAME@</artifactId>
  <version>1.0</version>
  <packaging>jar</packaging>
  <properties>
    <storm.version>@STORM@</storm.version>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency>
      <groupId>org.apache.storm</groupId>
      <artifactId>storm-client</artifactId>
      <version>${storm.version}</version>
      <scope>provided</scope>
    </dependency>
    <dependency>
      <groupId>org.apache.storm</groupId>
      <artifactId>flux-core</artifactId>
      <version>${storm.version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.storm</groupId>
      <artifactId>flux-wrappers</artifactId>
      <version>${storm.version}</version>
    </dependency>
  </dependencies>
  <build>
    <resources>
      <resource>
        <directory>${basedir}</directory>
        <includes>
          <include>resources/**</include>
        </includes>
      </resource>
    </resources>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-shade-plugin</artifactId>
        <version>3.5.1</version>
        <configuration>
          <createDependencyReducedPom>false</createDependencyReducedPom>
        </configuration>
        <executions>
          <execution>
            <phase>package</phase>
            <goals><goal>shade</goal></goals>
            <configuration>
              <transformers>
                <transformer implementation="org.apache.maven.plugins.shade.resource.ServicesResourceTransformer"/>
                <transformer implementation="org.apache.maven.plugins.shade.resource.ManifestResourceTransformer">
                  <mainClass>org.apache.storm.flux.Flux</mainClass>
                </transformer>
              </transformers>
            </configuration>
          </execution>
        </executions>
      </plugin>
    </plugins>
  </build>
</project>
"""
