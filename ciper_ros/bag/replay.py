"""Replay a recording over DDS at bag time with /clock, like ``ros2 bag play --clock``.

rosbag2 (mcap, sqlite3) and ROS 1 bags are opened through one reader
(:class:`ciper_ros.bag.reader.Bag`). Messages go out as their recorded CDR bytes (ROS 1
messages converted to CDR) (rclpy publishes ``bytes`` as they are; the
generated message class is still needed for the topic type). /clock carries bag time,
advanced at least every 20 ms of wall time and before every message, so nodes running
with ``use_sim_time`` see the recorded stamps. ``/tf_static`` is published latched
(transient local), as the recorder received it.
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib
import os
import time

from ciper_ros.bag.reader import Bag
from ciper_ros.util.errors import UserError

CLOCK_PERIOD_S = 0.02


def open_for_replay(bag: str | os.PathLike, *, rate: float = 1.0,
                    topics: list[str] | None = None) -> Bag:
    """Open and check a bag for replay (rate, topics) without touching DDS."""
    if not rate > 0:
        raise UserError(f'rate must be positive, got {rate}')
    reader = Bag(bag)
    missing = sorted(set(topics or []) - set(reader.topics))
    if missing:
        reader.close()
        raise UserError(f'{reader.path} has no topic(s) {missing}; it has '
                        f'{sorted(reader.topics)}')
    return reader


@dataclass
class Published:
    topic: str
    t_ns: int                 # bag time
    wall_s: float             # time.monotonic() right after publishing


def message_class(typename: str):
    """Import the rclpy class of 'pkg/msg/Name' (ImportError names a missing package)."""
    pkg, kind, name = typename.split('/')
    try:
        return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
    except (ImportError, AttributeError):
        raise ImportError(f'message type {typename} is not installed (no Python package '
                          f'{pkg}); its topic cannot be replayed') from None


class BagPlayer:
    def __init__(self, node, bag: str | os.PathLike | Bag, *, rate: float = 1.0,
                 topics: list[str] | None = None, clock: bool = True) -> None:
        """Prepare publishers for a bag's topics on ``node`` (a live rclpy node).

        :param bag: a path, or a :class:`Bag` opened (and checked) before DDS started
        :param rate: playback speed (2.0 = twice as fast)
        :param topics: replay only these topics (default: all with an installed type)
        """
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        self.reader = bag if isinstance(bag, Bag) else open_for_replay(bag, rate=rate,
                                                                      topics=topics)
        self.node, self.bag, self.rate, self.clock = node, self.reader.path, float(rate), clock
        self.skipped: dict[str, str] = {}
        self.publishers = {}
        self.connections = []
        for conn in self.reader.connections:
            if topics and conn.topic not in topics:
                continue
            try:
                cls = message_class(conn.msgtype)
            except ImportError as e:
                self.skipped[conn.topic] = str(e)
                continue
            if conn.topic not in self.publishers:
                latched = conn.topic == '/tf_static'
                qos = QoSProfile(depth=100 if latched else 50,
                                 reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                                 else DurabilityPolicy.VOLATILE)
                self.publishers[conn.topic] = node.create_publisher(cls, conn.topic, qos)
            self.connections.append(conn)
        self._clock_pub = None
        if clock:
            from rclpy.qos import qos_profile_system_default
            from rosgraph_msgs.msg import Clock

            self._clock_pub = node.create_publisher(Clock, '/clock', qos_profile_system_default)
        self.start_ns, self.end_ns = self.reader.start_ns, self.reader.end_ns

    def wait_for_subscribers(self, topics: list[str], *, timeout_s: float = 60.0,
                             alive=lambda: True) -> None:
        """Block until every topic in ``topics`` (or '/clock') has a matched subscription."""
        pubs = dict(self.publishers)
        if self._clock_pub is not None:
            pubs['/clock'] = self._clock_pub
        unknown = sorted(set(topics) - set(pubs))
        if unknown:
            raise UserError(f'cannot wait for {unknown}: not replayed from {self.bag}')
        t0 = time.monotonic()
        while True:
            waiting = [t for t in topics if pubs[t].get_subscription_count() < 1]
            if not waiting:
                return
            if not alive():
                raise RuntimeError('the subscriber process exited before it subscribed')
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f'no subscriber on {waiting} after {timeout_s:.0f} s')
            time.sleep(0.05)

    def publish_latched(self) -> int:
        """Publish the bag's /tf_static messages now (before playing); return how many.

        Latched data describes the whole recording; sending it first means a subscriber
        has it before the first data message (they are sent again at their bag time).
        """
        if '/tf_static' not in self.publishers:
            return 0
        n = 0
        for conn, _, raw in self.reader.raw_messages({'/tf_static'}):
            self.publishers['/tf_static'].publish(self.reader.cdr(raw, conn.msgtype))
            n += 1
        return n

    def _publish_clock(self, t_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = int(t_ns // 1_000_000_000), int(t_ns % 1_000_000_000)
        self._clock_pub.publish(msg)

    def play(self, *, progress: bool = True, on_publish=None) -> list[Published]:
        """Publish every message at its bag time (scaled by ``rate``); return what went out."""
        from tqdm import tqdm

        sent: list[Published] = []
        total_s = (self.end_ns - self.start_ns) * 1e-9
        bar = tqdm(total=round(total_s, 1), unit='s', desc=f'replay {self.bag.name}',
                   disable=not progress, mininterval=1.0,
                   bar_format='{l_bar}{bar}| {n:.1f}/{total:.1f} bag s')
        wall0 = time.monotonic()
        last_clock = None
        try:
            for conn, t_ns, raw in self.reader.raw_messages(set(self.publishers)):
                target = wall0 + (t_ns - self.start_ns) * 1e-9 / self.rate
                while True:
                    now = time.monotonic()
                    if now >= target:
                        break
                    if self._clock_pub is not None:
                        bag_now = self.start_ns + int((now - wall0) * self.rate * 1e9)
                        if last_clock is None or bag_now > last_clock:
                            self._publish_clock(bag_now)
                            last_clock = bag_now
                    time.sleep(min(target - now, CLOCK_PERIOD_S))
                if self._clock_pub is not None and (last_clock is None or t_ns > last_clock):
                    self._publish_clock(t_ns)
                    last_clock = t_ns
                self.publishers[conn.topic].publish(self.reader.cdr(raw, conn.msgtype))
                rec = Published(conn.topic, t_ns, time.monotonic())
                sent.append(rec)
                if on_publish is not None:
                    on_publish(rec, raw, conn.msgtype)
                bar.update(round((t_ns - self.start_ns) * 1e-9, 1) - bar.n)
        finally:
            bar.close()
        return sent

    def drain(self, *, timeout_s: float = 5.0) -> list[str]:
        """Wait until matched subscribers acknowledged what was published; topics that did not.

        A reliable writer destroyed right after its last ``publish`` drops samples still in
        flight (the last fix of a replay was lost that way), so a player that is about to
        exit drains first. A subscriber that vanished is waited for at most ``timeout_s``.
        """
        from rclpy.duration import Duration

        deadline = time.monotonic() + timeout_s
        late = []
        for topic, pub in self.publishers.items():
            left_s = max(0.0, deadline - time.monotonic())
            if not pub.wait_for_all_acked(Duration(nanoseconds=int(left_s * 1e9))):
                late.append(topic)
        return late

    def close(self) -> None:
        self.reader.close()


def replay(bag: str | os.PathLike, *, rate: float = 1.0, topics: list[str] | None = None,
           wait_for: list[str] | None = None, wait_timeout_s: float = 60.0,
           clock: bool = True, progress: bool = True) -> dict:
    """``ciper bag replay``: check the bag, create a node, wait for subscribers, play.

    The bag, topics and rate are checked before any DDS participant exists; DDS uses the
    caller's environment (``ROS_DOMAIN_ID`` included).
    """
    import rclpy

    reader = open_for_replay(bag, rate=rate, topics=topics)
    unknown = sorted(set(wait_for or []) - set(reader.topics) - {'/clock'})
    if unknown:
        reader.close()
        raise UserError(f'cannot wait for {unknown}: not in {reader.path}')
    rclpy.init()
    try:
        node = rclpy.create_node('ciper_bag_player')
        player = BagPlayer(node, reader, rate=rate, topics=topics, clock=clock)
        try:
            if wait_for:
                player.wait_for_subscribers(wait_for, timeout_s=wait_timeout_s)
            sent = player.play(progress=progress)
            unacked = player.drain()
        finally:
            player.close()
        counts: dict[str, int] = {}
        for s in sent:
            counts[s.topic] = counts.get(s.topic, 0) + 1
        node.destroy_node()
        return {'messages': len(sent), 'topics': counts, 'skipped': player.skipped,
                'unacknowledged': unacked,
                'duration_s': (player.end_ns - player.start_ns) * 1e-9}
    finally:
        rclpy.try_shutdown()
