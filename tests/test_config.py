"""eucalyptus.conf: values, defaults, and errors that name the file, line and variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from euca.core.config import Config, ConfigError, load_config


def test_reads_shell_style_lines_with_quotes_comments_and_export() -> None:
    config = load_config(text="""
# the front-end
SCHEDPOLICY="GREEDY"   # first fit
export NODES="node-a node-b"
NC_POLLING_FREQUENCY=10
VNET_MODE='MANAGED'
VNET_ADDRSPERNET="64"
""")
    assert config.schedpolicy == "GREEDY"
    assert config.nodes == ("node-a", "node-b")
    assert config.nc_polling_frequency == 10
    assert config.vnet_mode == "MANAGED"
    assert config.vnet_addrspernet == 64


def test_defaults_are_the_shipped_ones() -> None:
    config = load_config(text="")
    assert config == Config()
    assert config.schedpolicy == "ROUNDROBIN"
    assert (config.power_idlethresh, config.power_wakethresh, config.nc_polling_frequency) == (300, 300, 6)
    assert config.vnet_macprefix == "d0:0d"
    assert len(config.public_ips) == 254


def test_later_line_wins_and_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "eucalyptus.conf"
    path.write_text('SCHEDPOLICY="GREEDY"\nSCHEDPOLICY="BESTFIT"\n')
    assert load_config(path).schedpolicy == "BESTFIT"
    assert load_config(path, overrides={"SCHEDPOLICY": "spread"}).schedpolicy == "SPREAD"


def test_vnet_interface_of_1_4_sets_both_interfaces() -> None:
    config = load_config(text='VNET_INTERFACE="eth1"')
    assert (config.vnet_privinterface, config.vnet_pubinterface) == ("eth1", "eth1")


def test_unknown_and_unused_variables_are_warnings_not_errors() -> None:
    config = load_config(text='EUCALYPTUS="/"\nFROBNICATE="1"')
    assert any("EUCALYPTUS: not used" in w for w in config.warnings)
    assert any("FROBNICATE: unknown variable" in w for w in config.warnings)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('VNET_MODE="EDGY"', 'eucalyptus.conf:2: VNET_MODE="EDGY": unknown networking mode'),
        ('SCHEDPOLICY="FASTEST"', "eucalyptus.conf:2: SCHEDPOLICY=\"FASTEST\": unknown scheduling policy"),
        ("NC_POLLING_FREQUENCY=5", "NC_POLLING_FREQUENCY=\"5\": must be at least 6"),
        ("POWER_IDLETHRESH=ten", "POWER_IDLETHRESH=\"ten\": not an integer"),
        ('VNET_SUBNET="10.0.0.300"', "VNET_SUBNET"),
        ('VNET_NETMASK="255.0.255.0"', "not a contiguous netmask"),
        ('VNET_PUBLICIPS="127.0.0.1"', "loopback"),
        ('VNET_PUBLICIPS="10.0.0.1 10.0.0.1"', "listed twice"),
        ('VNET_MACMAP="AA:BB=10.0.0.1"', "VNET_MACMAP"),
        ('VNET_MACPREFIX="d0"', "VNET_MACPREFIX"),
        ('SCHEDPOLICY_FALLBACK="CACHEAWARE"', "cannot be its own fallback"),
        ('SCHEDPOLICY="GREEDY', "unterminated"),
        ("NODES=a b", "must be quoted"),
        ("this is not an assignment", "eucalyptus.conf:2: not a KEY=\"value\" line"),
        ('HYPERVISOR="vmware"', "unknown hypervisor"),
    ],
)
def test_bad_values_name_line_and_variable(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(text="# header\n" + text)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('VNET_MODE="MANAGED"\nVNET_ADDRSPERNET="24"', "VNET_ADDRSPERNET: 24 must be a power of two"),
        ('VNET_MODE="MANAGED"\nVNET_SUBNET="10.1.0.0"\nVNET_NETMASK="255.0.0.0"', "not aligned"),
        ('VNET_MODE="MANAGED"\nVNET_NETMASK="255.255.255.0"\nVNET_SUBNET="172.19.0.0"\nVNET_ADDRSPERNET="64"',
         "no network at or above VLAN 10"),
        ('VNET_MODE="STATIC"', "STATIC mode needs"),
        ("VNET_VLANMIN=100\nVNET_VLANMAX=50", "VNET_VLANMIN: 100 is above"),
    ],
)
def test_settings_that_disagree_name_the_variable(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="VNET_") as info:
        load_config(text=text)
    assert needle in str(info.value)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.conf")
