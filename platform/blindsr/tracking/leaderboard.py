"""The registry as a leaderboard: which model versions to rank, and their cached scores.

One run of experiment ``blindsr-leaderboard`` per model version × protocol × test set, tagged with its cache
key; its metrics are tied to the version's logged model and to the set's dataset (``datasets``), so
``search_logged_models(filter_string="metrics.`eval/…/psnr_y` > 30", datasets=[…])`` ranks the registry.
A run is a cache hit only once FINISHED (a run cut short is scored again). Each version also carries its
parameters and FLOPs as tags, so a re-run whose scores are all cached loads no model at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from blindsr.tracking.registry import RegistryError, _client, _refusals_as_errors, list_versions
from blindsr.tracking.store import RUN_NAME_TAG

EXPERIMENT = "blindsr-leaderboard"
KEY_TAG = "blindsr.leaderboard.key"  # model/version/protocol/xscale/set/digest/seed/model id: what a run scored
PARAMS_TAG, FLOPS_TAG = "blindsr.parameters", "blindsr.flops_256"  # version tags: its cost, measured once
SEED_TAGS = ("blindsr.seed", "seed")  # a run's or version's training seed (sweeps tag blindsr.seed)


@dataclass(frozen=True, eq=False)  # one object per version: hashed by identity
class ModelRef:
    """One registered model version: ``uri`` loads it; ``model_id`` is its MLflow 3 logged model (or None);
    ``params`` its training run's params (the flattened config) and ``seed`` that run's seed, when known."""

    name: str
    version: str
    run_id: str | None
    model_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    seed: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _ref(client: object, mv: object) -> ModelRef:
    """A :class:`ModelRef` from an MLflow ``ModelVersion`` (its run read for params and seed)."""
    source = str(getattr(mv, "source", "") or "")
    model_id = getattr(mv, "model_id", None) or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else None
    )
    params, run_tags = {}, {}
    if mv.run_id:
        run = client.get_run(mv.run_id)
        params, run_tags = dict(run.data.params), dict(run.data.tags)
    tags = dict(mv.tags)
    seed = params.get("seed") or next((t[k] for t in (run_tags, tags) for k in SEED_TAGS if k in t), None)
    return ModelRef(mv.name, str(mv.version), mv.run_id, model_id, tags, params, seed)


def _parse(text: str) -> tuple[str, str | None, str | None]:
    """``models:/name/3``, ``name/3``, ``models:/name@alias``, ``name@alias`` or ``name`` → (name, version, alias)."""
    ref = text.removeprefix("models:/").strip("/")
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return name, None, alias
    if "/" in ref:
        name, version = ref.rsplit("/", 1)
        return name, version, None
    return ref, None, None


@_refusals_as_errors("uri")
def model_refs(uri: str, names: Sequence[str] = ()) -> list[ModelRef]:
    """The versions named (``models:/name/3``, ``name@alias``, ``name`` for all its versions), or every version of
    every registered model; each once, in order. Raises :class:`RegistryError` naming what does not resolve."""
    import mlflow

    client = _client(uri)
    out: dict[tuple[str, str], ModelRef] = {}
    wanted = list(names) or sorted({v.name for v in list_versions(uri)})
    for text in wanted:
        name, version, alias = _parse(text)
        try:
            if alias == "latest":
                version = list_versions(uri, name)[0].version
            if alias and alias != "latest":
                found = [client.get_model_version_by_alias(name, alias)]
            elif version:
                found = [client.get_model_version(name, version)]
            else:
                found = list(client.search_model_versions(f"name = '{name}'", order_by=["version_number ASC"]))
        except (mlflow.exceptions.MlflowException, IndexError) as e:
            raise RegistryError(f"no registered model version {text!r} in {uri}") from e
        if not found:
            raise RegistryError(f"no registered model named {name!r} in {uri}")
        for mv in found:
            out.setdefault((mv.name, str(mv.version)), _ref(client, mv))
    return list(out.values())


def _experiment(client: object, create: bool) -> str | None:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None and create:
        return client.create_experiment(EXPERIMENT)
    return exp.experiment_id if exp else None


@_refusals_as_errors("uri")
def cached_scores(uri: str, keys: Iterable[str]) -> dict[str, dict[str, float]]:
    """{key: metrics} of the FINISHED leaderboard runs whose cache key is one of ``keys`` (the newest per key)."""
    client, wanted = _client(uri), set(keys)
    exp_id = _experiment(client, create=False)
    out: dict[str, dict[str, float]] = {}
    token = None
    while exp_id is not None:
        page = client.search_runs(
            [exp_id], "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"], page_token=token
        )
        for run in page:
            key = run.data.tags.get(KEY_TAG)
            if key in wanted:
                out[key] = {k: float(v) for k, v in run.data.metrics.items()}
        token = page.token
        if not token:
            break
    return out


@_refusals_as_errors("uri")
def open_run(uri: str, key: str, ref: ModelRef, tags: dict[str, str]) -> str:
    """A new RUNNING leaderboard run for cache ``key`` of ``ref``, tagged with the key, the version and ``tags``."""
    client = _client(uri)
    name = f"{ref.name}/v{ref.version} " + " ".join(tags.values())
    all_tags = {KEY_TAG: key, RUN_NAME_TAG: name, "blindsr.model": ref.name, "blindsr.version": ref.version, **tags}
    return client.create_run(_experiment(client, create=True), run_name=name, tags=all_tags).info.run_id


@_refusals_as_errors("uri")
def close_run(uri: str, run_id: str, ref: ModelRef, version_tags: dict[str, str]) -> None:
    """Copy ``version_tags`` onto the model version and mark the run FINISHED (from now on a cache hit)."""
    tag_version(uri, ref, version_tags)
    _client(uri).set_terminated(run_id)


@_refusals_as_errors("uri")
def tag_version(uri: str, ref: ModelRef, tags: dict[str, str]) -> None:
    """Set ``tags`` on the model version (its parameters and FLOPs, once measured)."""
    client = _client(uri)
    for k, v in tags.items():
        client.set_model_version_tag(ref.name, ref.version, k, v)
