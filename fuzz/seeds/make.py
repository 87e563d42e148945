#!/usr/bin/env python3
"""Writes the seed inputs in seeds/TARGET/ (committed; rerun after changing an input layout).

Well-formed inputs that reach deep paths a fuzzer would take long to find: an ARP request
for the gateway, an echo request to it, a DNS query, TCP and UDP through it, a run of TCP
segments for the coalescer. Checksums are left zero where the target fixes them up.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
BOUND = bytes([2, 0, 0, 0, 0, 0x11])
GW_MAC = bytes([2, 0x42, 10, 0, 0, 1])
BCAST = b"\xff" * 6
IP = lambda *o: bytes(o)
BOUND_IP, GW_IP = IP(10, 0, 0, 11), IP(10, 0, 0, 1)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident=1):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def eth(dst, src, etype, payload):
    f = dst + src + struct.pack("!H", etype) + payload
    return f + b"\0" * max(0, 60 - len(f))


def dns_query(name, qtype=1, ident=0x1234):
    q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", qtype, 1)


def tcp(sport, dport, seq, flags, payload=b"", ack=0):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload


def record(port, flags, frame):
    return bytes([port, flags]) + struct.pack("!H", len(frame)) + frame


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# bridge_process: [port, flags, len, frame]; flags 0x0c fix the IPv4 and L4 checksums.
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, BOUND, BOUND_IP, b"\0" * 6, GW_IP)
arp_neigh = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, bytes([2, 0, 0, 0, 0, 0x33]),
                        IP(10, 0, 0, 33), b"\0" * 6, IP(10, 0, 0, 13))
echo = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + b"ping" * 8
udp = lambda sport, dport, data: struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
frames = {
    "arp_gateway": record(1, 0, eth(BCAST, BOUND, 0x0806, arp)),
    "arp_neighbour": record(3, 0, eth(BCAST, bytes([2, 0, 0, 0, 0, 0x33]), 0x0806, arp_neigh)),
    "echo_gateway": record(1, 0x0c, eth(GW_MAC, BOUND, 0x0800, ipv4(BOUND_IP, GW_IP, 1, echo))),
    "echo_out": record(1, 0x0c, eth(GW_MAC, BOUND, 0x0800, ipv4(BOUND_IP, IP(8, 8, 8, 8), 1, echo))),
    "dns": record(1, 0x0c, eth(GW_MAC, BOUND, 0x0800,
                               ipv4(BOUND_IP, GW_IP, 17, udp(40000, 53, dns_query("web"))))),
    "udp_out": record(1, 0x0c, eth(GW_MAC, BOUND, 0x0800,
                                   ipv4(BOUND_IP, IP(1, 1, 1, 1), 17, udp(40000, 123, b"x" * 48)))),
    "tcp_syn": record(1, 0x0c, eth(GW_MAC, BOUND, 0x0800,
                                   ipv4(BOUND_IP, IP(1, 1, 1, 1), 6, tcp(40000, 80, 1000, 0x02)))),
    "unicast": record(2, 0, eth(BOUND, bytes([2, 0, 0, 0, 0, 0x12]), 0x0800,
                                ipv4(IP(10, 0, 0, 12), BOUND_IP, 17, udp(1, 2, b"hi")))),
}
for name, data in frames.items():
    write("bridge_process", name, data)
write("bridge_process", "all", b"".join(frames.values()))

# gateway_dns: [rotation, split, query...]: the query is also the stream's ops.
for name, qtype in [("a_web", 1), ("aaaa_web", 28), ("any_db", 255)]:
    q = dns_query(name.split("_")[1], qtype)
    write("gateway_dns", name, bytes([0, len(q)]) + q + struct.pack("!H", len(q)) + q)
ptr = dns_query("2.0.0.10.in-addr.arpa", 12)
write("gateway_dns", "ptr", bytes([1, len(ptr)]) + ptr)
write("gateway_dns", "outside", bytes([0, 0]) + dns_query("example.com"))

# vxlan_decode: [range(4), vxlan header, inner frame]
inner = eth(BOUND, GW_MAC, 0x0800, ipv4(BOUND_IP, GW_IP, 6, tcp(1, 2, 3, 0x10, b"data")))
write("vxlan_decode", "tcp", struct.pack("!HH", 49152, 65535) + bytes([8, 0, 0, 0, 0, 0x10, 0, 0]) + inner)

# gso_coalesce: [mode, mss(2), (len(2), eth, ip)...]: three contiguous segments, checksums
# fixed by mode bit 1.
segs = b""
for i in range(3):
    p = ipv4(BOUND_IP, GW_IP, 6, tcp(5000, 80, 1000 + 100 * i, 0x10, bytes([i]) * 100, ack=7), ident=i)
    segs += struct.pack("!H", len(p)) + b"\0" + p
write("gso_coalesce", "three_segments", bytes([0x06, 0, 100]) + segs)
write("gso_coalesce", "superframe", bytes([0, 0, 100]) + b"\0" * 10 + eth(GW_MAC, BOUND, 0x0800,
      ipv4(BOUND_IP, GW_IP, 6, tcp(5000, 80, 1, 0x18, bytes(range(256)) * 2))))

# state_file: a state document with each kind of record, one endpoint record unreadable.
import json
state = {
    "version": 1,
    "networks": [
        {"name": "n", "subnet": "10.7.0.0/24", "gateway": "10.7.0.1", "mtu": 1500,
         "aging_seconds": 300, "icc": False, "nat": True, "internal": False},
        {"name": "o", "subnet": "10.8.0.0/24", "gateway": "10.8.0.1", "mtu": 1450,
         "aging_seconds": 300, "vni": 4096, "created_ms": 1700000000000},
    ],
    "endpoints": [
        {"name": "web", "network": "n", "netns": "web", "ifname": "eth0", "kind": "veth",
         "ip": "10.7.0.2", "mac": "02:42:0a:07:00:02", "host_ifname": "wv0000000001",
         "netns_id": [4, 4026532000], "aliases": ["www"], "port_security": False,
         "published": [{"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80,
                        "protocol": "tcp"}]},
        {"name": "bad", "network": "n", "netns": "b", "ifname": "eth0", "kind": "tap",
         "ip": "10.7.0.3", "mac": "02:42:0a:07:00:zz"},
    ],
    "static_fdb": [{"network": "n", "mac": "02:00:00:00:00:01", "endpoint": "web"}],
    "peers": [{"addr": "192.0.2.2", "vni": 4096, "port": 4789}],
    "removed_networks": {"old": 1600000000000},
    "pending_endpoints": [{"netns": "c", "netns_id": [4, 4026532001], "ifname": "eth0",
                           "kind": "tap"}],
}
write("state_file", "full", json.dumps(state, indent=1).encode())

# api_bodies: [request, body]; requests in the order of Body::ALL.
bodies = [
    {"name": "n", "subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "mtu": 1400, "icc": False,
     "nat": "none", "driver": "overlay", "vni": 42, "aging_seconds": 60},
    {"netns": "web", "name": "web", "ip": "10.1.0.5", "mac": "02:42:0a:01:00:05",
     "ifname": "eth1", "kind": "veth", "aliases": ["www"], "publish": ["8080:80"],
     "publish_all": ["53/udp"], "port_security": False},
    {"specs": ["127.0.0.1:8080-8081:80-81/tcp"], "publish_all": ["443"]},
    {"spec": "127.0.0.1:8080/tcp"},
    {"mac": "02:00:00:00:00:01", "endpoint": "web"},
    {"addr": "192.0.2.2", "vni": 42, "port": 4789},
    {"delay": "20ms", "jitter": "5ms", "loss": "10%", "duplicate": "1%", "reorder": "25%",
     "corrupt": "0.1%", "rate": "10mbit", "seed": 7},
]
for i, b in enumerate(bodies):
    write("api_bodies", "body%d" % i, bytes([i]) + json.dumps(b).encode())

# engine_requests: [kind, json]: 0 Docker CreateNetwork, 1 Docker endpoint options, 2 CNI.
engine = [
    {"NetworkID": "cf" * 32, "Options": {"com.docker.network.enable_ipv6": False,
     "com.docker.network.generic": {"weft.mtu": "1400", "weft.icc": "false",
     "weft.driver": "overlay", "weft.vni": "42", "weft.published_source": "gateway"},
     "com.docker.network.internal": True},
     "IPv4Data": [{"AddressSpace": "weft", "Gateway": "10.99.0.1/24", "Pool": "10.99.0.0/24"}],
     "IPv6Data": []},
    {"com.docker.network.portmap": [
        {"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 8080, "HostPortEnd": 8080},
        {"Proto": 17, "IP": "", "Port": 53, "HostIP": "127.0.0.1", "HostPort": 0, "HostPortEnd": 0}]},
    {"cniVersion": "1.1.0", "name": "web", "type": "weft", "network": "web",
     "subnet": "10.40.0.0/24", "icc": False, "mtu": 1400, "kind": "veth",
     "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
     "cni.dev/valid-attachments": [{"containerID": "abc", "ifname": "eth0"}]},
]
for i, b in enumerate(engine):
    write("engine_requests", "req%d" % i, bytes([i]) + json.dumps(b).encode())
