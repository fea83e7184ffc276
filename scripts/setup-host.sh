#!/usr/bin/env bash
# Installs the Debian packages v6agent's build, lab and tests need (design section 6).
# Idempotent: installs only what is missing and does nothing when everything is there.
# Run as root on Debian 12.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host.sh: must run as root (it installs Debian packages)" >&2
  exit 1
fi

packages=(
  iproute2 iputils-ping tcpdump procps kmod util-linux systemd
  nftables iptables ebtables
  dnsmasq-base isc-dhcp-client
  # guest-config checks its output with the real tools (netplan, nmcli --offline, ifup -n), and
  # its wire tests boot each guest OS's own daemons (NetworkManager and networkd on a private
  # D-Bus system bus); strace shows which files the guest's dhclient opens
  netplan.io network-manager ifupdown dbus-daemon strace
  # the nft backend runs libnftables in-process (native/src/nftables.cc)
  libnftables-dev
  libvirt-dev libvirt-daemon libvirt-daemon-system libvirt-clients qemu-system-x86
  linux-image-cloud-amd64 busybox-static cpio
  python3 python3-scapy
  valgrind
  openssl
  # the packages: scripts/build-deb.sh (dpkg-deb, dpkg-shlibdeps, strip), lintian, rpmbuild,
  # and the rollout playbook's test (ansible-playbook -c local; its apt module needs python3-apt)
  dpkg-dev binutils lintian rpm ansible-core python3-apt
)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-host.sh: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup-host.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# No recommends: they pull in desktop and firmware packages the lab never uses.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-host.sh: installed ${#missing[@]} packages"
