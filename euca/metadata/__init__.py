"""The instance metadata service (Eucalyptus's ``VmMetadata``): what an instance learns about itself
at ``http://169.254.169.254/latest/...``, found by the address the request comes from."""

from euca.metadata.facts import InstanceFacts
from euca.metadata.service import Directory, MetadataService, is_metadata_path

__all__ = ["Directory", "InstanceFacts", "MetadataService", "is_metadata_path"]
