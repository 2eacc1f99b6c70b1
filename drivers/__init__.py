"""Hypervisor back ends behind one protocol (``drivers.protocol.Driver``)."""
