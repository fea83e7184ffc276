/**
 * What RHEL 6's initscripts (9.03, ifup-eth and ifup-ipv6) do for DHCPv6, step by step. The real
 * scripts cannot run on Debian (they need RHEL's /etc/init.d/functions, ipcalc, arping and more),
 * so this replays their DHCPv6 path with the real ifcfg parser initscripts use — bash sourcing the
 * files — and the dhclient command line ifup-eth builds:
 * - `ifup` sources /etc/sysconfig/network and ifcfg-<dev>; an HWADDR must match the device;
 * - ifup-ipv6 (IPV6INIT=yes, no IPV6FORWARDING) writes accept_ra, accept_redirects and autoconf:
 *   1, or 0 with IPV6_AUTOCONF=no;
 * - ifup-eth (DHCPV6C=yes) adds `-cf /etc/dhcp/dhclient6-<dev>.conf` when that file is not empty
 *   (since 9.03.40, RHEL 6.4; older ones rely on DHCPV6C_OPTIONS alone) and runs
 *   `/sbin/dhclient -6 -1 $DHCPV6C_OPTIONS $DHCLIENTCONF -lf /var/lib/dhclient/dhclient6-<dev>.leases
 *   -pf /var/run/dhclient6-<dev>.pid <dev>`.
 * Left out: the DHCPv4 run BOOTPROTO=dhcp starts first (the lab's router serves no IPv4) and
 * ifup-post's hostname and resolv.conf handling.
 */
export const RHEL6_IFUP_DHCPV6 = `set -eu
cd /etc/sysconfig/network-scripts
. /etc/sysconfig/network
. "./ifcfg-$1"
[ "$NETWORKING_IPV6" = yes ] && [ "$IPV6INIT" = yes ] && [ "$DHCPV6C" = yes ] || { echo "IPv6/DHCPv6 not enabled for $DEVICE" >&2; exit 1; }
if [ -n "\${HWADDR:-}" ] && [ "$(tr A-F a-f <"/sys/class/net/$DEVICE/address")" != "$(echo "$HWADDR" | tr A-F a-f)" ]; then
  echo "Device $DEVICE has a different MAC address than expected, ignoring." >&2; exit 1
fi
ip link set dev "$DEVICE" up
auto=1; [ "\${IPV6_AUTOCONF:-}" = no ] && auto=0
for key in forwarding accept_ra accept_redirects autoconf; do
  value=$auto; [ $key = forwarding ] && value=0
  sysctl -e -w "net.ipv6.conf.$DEVICE.$key=$value" >/dev/null
done
DHCLIENTCONF=
[ -s "/etc/dhcp/dhclient6-$DEVICE.conf" ] && DHCLIENTCONF="-cf /etc/dhcp/dhclient6-$DEVICE.conf"
mkdir -p /var/lib/dhclient
# dhclient -6 binds to the link-local address: wait until DAD has passed (ifup-eth's dhclient retries).
while ! ip -6 addr show dev "$DEVICE" scope link | grep -q 'inet6' || ip -6 addr show dev "$DEVICE" scope link | grep -q tentative; do sleep 0.1; done
# Word splitting of the two option variables is ifup-eth's own.
exec /sbin/dhclient -6 -1 \${DHCPV6C_OPTIONS:-} $DHCLIENTCONF -lf "/var/lib/dhclient/dhclient6-$DEVICE.leases" -pf "/var/run/dhclient6-$DEVICE.pid" "$DEVICE"
`;
