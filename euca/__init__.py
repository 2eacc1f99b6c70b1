"""euca: a Eucalyptus-style private cloud."""

__version__ = "0.1.0"
