"""The node's network agent (Eucalyptus's eucanetd): it reads the cluster's network view and makes
the host's bridges, firewall (iptables, ipset, ebtables), NAT and DHCP match it."""

from euca.net.render import Desired, HostConfig, render
from euca.net.view import NetView, ViewError, parse_view

__all__ = ["Desired", "HostConfig", "NetView", "ViewError", "parse_view", "render"]
