"""The Storage Controller (EBS): volumes on a back end (sparse files or LVM), their iSCSI exports
through tgt, point-in-time copies for snapshots; its HTTP service; and the cloud's client of it."""

from euca.storage.backends import Backend, Das, Overlay, StorageError
from euca.storage.client import RemoteStorage, StorageClient, StorageUnreachable
from euca.storage.controller import Limits, StorageController, VolumeLimit
from euca.storage.tgt import IQN_PREFIX, Export, Tgt, iqn_of

__all__ = ["IQN_PREFIX", "Backend", "Das", "Export", "Limits", "Overlay", "RemoteStorage", "StorageClient",
           "StorageController", "StorageError", "StorageUnreachable", "Tgt", "VolumeLimit", "iqn_of"]
