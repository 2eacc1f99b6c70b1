"""drivers.sim: an in-memory node on an injected clock."""

from __future__ import annotations

import pytest

from drivers.protocol import Driver, InstanceSpec, NcState, NodeError
from drivers.sim import NodeShape, SimNode
from pyx.placement import ASLEEP, DOWN, UP, WAKING


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def spec(instance_id: str, cores: int = 1) -> InstanceSpec:
    return InstanceSpec(instance_id, "r-1", "admin", "m1.small", cores, 256, 5, "emi-00000001")


def test_a_sim_node_is_a_driver() -> None:
    assert isinstance(SimNode("nc1"), Driver)


def test_an_instance_stages_boots_runs_and_tears_down_on_the_clock() -> None:
    clock = Clock()
    node = SimNode("nc1", NodeShape(cores=4, boot_time=20.0), clock)
    node.start(spec("i-00000001"), staged=30.0)
    log = []
    for t in (0.0, 29.9, 30.0, 49.9, 50.0, 80.0):
        clock.now = t
        log.append((node.instances()[0].state, t))
        if t == 80.0:
            node.terminate("i-00000001")
            log.append((node.instances()[0].state, t))
    assert log == [(NcState.STAGING, 0.0), (NcState.STAGING, 29.9), (NcState.BOOTING, 30.0),
                   (NcState.BOOTING, 49.9), (NcState.RUNNING, 50.0), (NcState.RUNNING, 80.0),
                   (NcState.TEARDOWN, 80.0)]
    assert node.describe_resources().free_cores == 4
    clock.now = 80.0 + 180.0
    assert node.instances() == []  # Teardown is forgotten after 180 s
    with pytest.raises(NodeError, match="i-00000001"):
        node.console_output("i-00000001")


def test_resources_are_taken_at_start_and_given_back_at_terminate() -> None:
    node = SimNode("nc1", NodeShape(cores=4, memory=1024, disk=20), Clock())
    node.start(spec("i-00000001", cores=3))
    r = node.describe_resources()
    assert (r.free_cores, r.free_memory, r.free_disk, r.instances) == (1, 768, 15, 1)
    node.terminate("i-00000001")
    assert node.describe_resources().free_cores == 4


def test_errors_name_the_instance() -> None:
    node = SimNode("nc1", NodeShape(cores=2), Clock())
    node.start(spec("i-00000001", cores=2))
    with pytest.raises(NodeError, match="i-00000002: not enough resources"):
        node.start(spec("i-00000002"))
    with pytest.raises(NodeError, match="i-00000001: already"):
        node.start(spec("i-00000001"))
    for call in (node.terminate, node.reboot, node.console_output):
        with pytest.raises(NodeError, match="i-DEADBEEF"):
            call("i-DEADBEEF")


def test_reboot_boots_again_and_console_tells_the_story() -> None:
    clock = Clock()
    node = SimNode("nc1", NodeShape(boot_time=10.0), clock)
    node.start(spec("i-00000001"))
    with pytest.raises(NodeError, match="still Booting"):
        node.reboot("i-00000001")
    clock.now = 15.0
    assert "login prompt" in node.console_output("i-00000001")
    node.reboot("i-00000001")
    assert node.instances()[0].state is NcState.BOOTING
    clock.now = 25.0
    assert node.instances()[0].state is NcState.RUNNING


def test_power_states_and_draw() -> None:
    clock = Clock()
    shape = NodeShape(cores=4, power_up=90.0, power_down=20.0, watts_idle=100.0, watts_busy=200.0, watts_asleep=5.0)
    node = SimNode("nc1", shape, clock)
    assert node.state == UP and node.watts() == 100.0
    node.start(spec("i-00000001", cores=2))
    assert node.watts() == 150.0
    with pytest.raises(NodeError, match="still runs instances"):
        node.power_down()
    node.terminate("i-00000001")
    node.power_down()
    assert node.state == ASLEEP and node.watts() == 5.0
    clock.now = 10.0
    assert node.power_up() == 20.0 + 90.0  # it finishes powering down first
    assert node.state == WAKING
    node.start(spec("i-00000002"))
    clock.now = 110.0
    node.awake()
    assert node.state == UP
    assert node.running_at("i-00000002") == 110.0 + shape.boot_time
    assert node.fail() == ["i-00000002"]
    assert node.state == DOWN and node.watts() == 0.0
    with pytest.raises(NodeError, match="is down"):
        node.start(spec("i-00000003"))
    node.recover()
    assert node.state == UP and node.describe_resources().free_cores == 4


def test_ended_instances_are_reported_for_180_s_and_not_kept_longer_than_two_windows() -> None:
    clock = Clock()
    node = SimNode("nc1", NodeShape(cores=4, boot_time=0.0), clock)
    for k in range(2_000):
        clock.now = k * 1.0
        node.start(spec(f"i-{k:08X}"))
        node.terminate(f"i-{k:08X}")
        teardown = [s.instance_id for s in node.instances()]
        # Exactly those ended in the last 180 s, however the node files them away.
        assert teardown == [f"i-{j:08X}" for j in range(max(0, k - 179), k + 1)]
        assert len(node._ended) + len(node._ended_before) <= 2 * 180 + 1
    with pytest.raises(NodeError, match="already on node"):
        node.start(spec("i-000007CF"))  # still in Teardown
    node.start(spec("i-00000001"))  # forgotten long ago: the id may come back
