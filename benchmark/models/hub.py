"""Tower weights named by a Hugging Face Hub id (`weights: google/vit-base-patch16-224`, optional `revision:`).

They are resolved through the standard Hub cache, which every transformers user already has (`HF_HUB_CACHE`, else
`HF_HOME/hub`, else `~/.cache/huggingface/hub`), with huggingface_hub's own `snapshot_download`. It runs offline
unless the suite says `allow_download: true`; then a missing model is downloaded once, with its progress on stderr.
The commit the revision resolves to is what a cell records and what hidden-state caches key on: a moved branch is a
different configuration, never silently the same one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import TowerError

# `name` or `owner/name`: letters, digits, '-', '_', '.'; not a path (no leading '.', '/', '~', no second '/').
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


class HubWeightsMissing(TowerError):
    """A Hub id that is not in the local Hub cache while downloads are off (or that could not be downloaded)."""


def looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID.fullmatch(text)) and not text.endswith((".json", ".safetensors", ".bin"))


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps models, read from the environment now (its `constants` read it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


@dataclass(frozen=True)
class HubWeights:
    repo_id: str
    revision: str | None  # as the suite asked (None: the default branch)
    commit: str  # what it resolved to
    directory: Path  # the snapshot: config.json, weights, tokenizer files

    @property
    def identity(self) -> str:
        return f"hub:{self.repo_id}@{self.commit}"


def resolve_hub_weights(repo_id: str, revision: str | None, allow_download: bool) -> HubWeights:
    """The cached snapshot of `repo_id` at `revision`; downloaded first when absent and `allow_download`."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir()
    asked = revision or "main"
    try:
        path = snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True)
    except LocalEntryNotFoundError as error:
        if not allow_download:
            raise HubWeightsMissing(
                f"Hub model '{repo_id}' (revision {asked}) is not in the Hub cache {cache}, and the suite does not "
                "allow downloads: set `allow_download: true`, or fetch it once with "
                f"`hf download {repo_id}{'' if revision is None else f' --revision {revision}'}`"
            ) from error
        try:
            path = snapshot_download(repo_id, revision=revision, cache_dir=cache)  # tqdm progress on stderr
        except Exception as download_error:  # noqa: BLE001 - huggingface_hub raises many types (network, auth, 404)
            raise HubWeightsMissing(
                f"Hub model '{repo_id}' (revision {asked}) is not in the Hub cache {cache} and could not be "
                f"downloaded: {type(download_error).__name__}: {download_error}"
            ) from download_error
    directory = Path(str(path))
    return HubWeights(repo_id, revision, directory.name, directory)


def checkpoint_directory(weights: str, revision: str | None) -> Path | None:
    """Where a tower's pretrained weights load from: a local directory, or a Hub id's cached snapshot (offline: a
    validated suite has it cached); None for 'random' and for a path that is neither."""
    if weights == "random":
        return None
    local = Path(weights).expanduser()
    if local.is_dir():
        return local
    if looks_like_hub_id(weights):
        return resolve_hub_weights(weights, revision, allow_download=False).directory
    return None
