#!/usr/bin/env bash
# Builds and checks what ships, for amd64 and arm64: the static musl binaries,
# the .debs (lintian, files, control files) and the from-scratch images (run
# against the real dockerd); then installs, upgrades, removes and purges the
# amd64 .deb on this machine. Needs root on an amd64 Debian host; refuses to
# run where rtinspect is installed already.
#
# Installs what is missing: the musl targets x86_64-unknown-linux-musl and
# aarch64-unknown-linux-musl (rustup), cargo-deb (cargo install), and with apt
# lintian, systemd (systemd-analyze), file, binutils (readelf), musl-tools
# (musl-gcc, for ring's C and assembly on x86_64), gcc-aarch64-linux-gnu and
# libc6-dev-arm64-cross (the cross compiler and its headers, for ring on
# aarch64), qemu-user-static (runs the arm64 binary here, in user mode; no
# binfmt_misc registration is needed or made) and busybox-static (the test
# container's image, when missing).
#
#   RTINSPECT_TEST_DOCKER_HOST  the dockerd for the run and image checks
#                               (unix:///path)
#
# Prints a summary with the sizes, build times and the unit's exposure score.
set -euo pipefail

cd "$(dirname "$0")/.."
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
declare -A deb_arch=([x86_64-unknown-linux-musl]=amd64 [aarch64-unknown-linux-musl]=arm64)
# The machine as file(1) names it.
declare -A machine=([x86_64-unknown-linux-musl]=x86-64 [aarch64-unknown-linux-musl]="ARM aarch64")
# What runs a binary of the target here (empty: natively; qemu user mode
# needs no binfmt_misc registration).
declare -A runner=([x86_64-unknown-linux-musl]="" [aarch64-unknown-linux-musl]=qemu-aarch64-static)
host_target=x86_64-unknown-linux-musl
version=$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
budget=$((7 * 512 * 1024))

# The aarch64 cross build: Debian's cross gcc compiles ring's C; the linker is
# that gcc behind packaging/aarch64-static-pie-gcc, which links static-pie as
# rustc does for x86_64 (see that script). Other targets ignore these.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER="$PWD/packaging/aarch64-static-pie-gcc"
export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_musl=aarch64-linux-gnu-ar

work=$(mktemp -d /tmp/rtinspect-pkg.XXXXXX)
docker_host="${RTINSPECT_TEST_DOCKER_HOST:-unix:///var/run/docker.sock}"
sock="${docker_host#unix://}"
failures=0
passes=0
summary=()

say() { printf 'packaging/check.sh: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; failures=$((failures + 1)); }
pass() { say "ok: $*"; passes=$((passes + 1)); }
docker_() { docker -H "$docker_host" "$@"; }

cleanup() {
  if [ -n "${installed:-}" ]; then dpkg -P rtinspect >/dev/null 2>&1 || true; fi
  if [ -n "${containers:-}" ]; then docker_ rm -f $containers >/dev/null 2>&1 || true; fi
  if [ -n "${images:-}" ]; then docker_ rmi $images >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { say "needs root (dpkg -i)"; exit 1; }
[ "$(dpkg --print-architecture)" = amd64 ] || { say "needs an amd64 host"; exit 1; }
if dpkg -s rtinspect >/dev/null 2>&1; then
  say "rtinspect is installed on this machine; not touching it"
  exit 1
fi

# 0. Tools.
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$(rustup target list --installed 2>/dev/null)" || rustup target add "$t"
done
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v file >/dev/null || missing+=(file)
command -v readelf >/dev/null || missing+=(binutils)
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
# The cross gcc only recommends its C library headers; ring's C includes them.
[ -e /usr/aarch64-linux-gnu/include/stdint.h ] || missing+=(libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
[ -x /bin/busybox ] && grep -q 'statically linked' <<<"$(file -L /bin/busybox 2>&1)" ||
  missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# 1. The static binaries, in cargo's target directory (CARGO_TARGET_DIR or
# ./target).
target_dir=$(cargo metadata --locked --no-deps --format-version 1 |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || { fail "cargo metadata named no target directory"; exit 1; }
binary() { printf '%s/%s/release/rtinspect' "$target_dir" "$1"; }
for t in "${targets[@]}"; do
  start=$(date +%s)
  cargo build --release --locked --target "$t" --quiet
  summary+=("build $t: $(($(date +%s) - start)) s")
done

# A labelled container that is unhealthy, for `once` to report: by each
# binary here, and inside each image.
label="rtinspect-pkg.$$"
sick=""
if docker_ version >/dev/null 2>&1; then
  if ! docker_ image inspect rtinspect-test/busybox:1 >/dev/null 2>&1; then
    # The same image the live tests import (tests/util.rs).
    img="$work/busybox"; mkdir -p "$img/bin"; cp /bin/busybox "$img/bin/"
    for a in sh sleep true false kill; do ln -s busybox "$img/bin/$a"; done
    tar -C "$img" -c . | docker_ import - rtinspect-test/busybox:1 >/dev/null
  fi
  sick=$(docker_ run -d --network none --label "$label=g-pkg" \
    --health-cmd false --health-interval 1s --health-retries 1 rtinspect-test/busybox:1 sleep 1000)
  containers="$sick"
  for _ in $(seq 1 60); do
    [ "$(docker_ inspect -f '{{.State.Health.Status}}' "$sick")" = unhealthy ] && break
    sleep 0.5
  done
else
  fail "no dockerd at $docker_host for the run and image checks"
fi

# Whether `once` printed the event for the sick container; $1 names the run,
# $2 its stdout, $3 the file with its stderr.
reported_sick() {
  if grep -q "\"game_id\":\"g-pkg\",\"container_id\":\"$sick\"" <<<"$2" &&
     grep -q '"health":"unhealthy"' <<<"$2"; then
    pass "$1: once reported the unhealthy container"
  else
    fail "$1: no event; stdout: $2; stderr: $(cat "$3")"
  fi
}

# Static-pie (no interpreter, no libraries, loaded at a random address), full
# RELRO, no executable stack, within the size budget, and it runs.
check_binary() {
  local t=$1 bin desc headers dynamic size out
  bin=$(binary "$t")
  desc=$(file -b "$bin")
  case "$desc" in
    *"${machine[$t]}"*"static-pie linked"*) pass "$t: $(printf '%s' "$desc" | cut -d, -f1-5)" ;;
    *) fail "$t: not a static-pie ${machine[$t]} executable: $desc" ;;
  esac
  headers=$(readelf -lW "$bin")
  dynamic=$(readelf -dW "$bin")
  if grep -q 'INTERP' <<<"$headers" || grep -q '(NEEDED)' <<<"$dynamic"; then
    fail "$t: wants an interpreter or shared libraries"
  elif ! grep -q 'GNU_RELRO' <<<"$headers" || ! grep -q 'BIND_NOW' <<<"$dynamic"; then
    fail "$t: no full RELRO"
  elif ! grep -Eq 'GNU_STACK +(0x[0-9a-f]+ +){5}RW +' <<<"$headers"; then
    fail "$t: executable stack"
  else
    pass "$t: readelf: no interpreter, no libraries, full RELRO, no executable stack"
  fi
  size=$(stat -c %s "$bin")
  if [ "$size" -le "$budget" ]; then
    pass "$t: binary size $size bytes (budget 3.5 MiB)"
  else
    fail "$t: binary size $size bytes is over the 3.5 MiB budget"
  fi
  summary+=("binary $t: $size bytes")
  out=$(timeout 60 "${runner[$t]:-env}" "$bin" --version 2>&1 || true)
  [ "$out" = "rtinspect $version" ] && pass "$t: --version${runner[$t]:+ under ${runner[$t]}}" ||
    fail "$t: --version printed: $out"
  if [ -n "$sick" ]; then
    out=$(timeout 120 "${runner[$t]:-env}" "$bin" once --docker-host "$docker_host" \
      --label "$label" 2>"$work/once-$t.err" || true)
    reported_sick "$t${runner[$t]:+ under ${runner[$t]}}" "$out" "$work/once-$t.err"
  fi
}

for t in "${targets[@]}"; do check_binary "$t"; done

# 2. The .debs. Every architecture's has the same files, control files and
# maintainer scripts; only Architecture, Installed-Size and the binary differ.
declare -A deb_of
# Accepted lintian tags (anything else at E or W fails):
# - shared-library-lacks-prerequisites: lintian takes a static-pie executable
#   (ELF type DYN, no NEEDED) for a shared library; it has nothing to need.
# - initial-upload-closes-no-bugs: the changelog closes no Debian bug; the
#   package is not uploaded to Debian's archive.
# - wrong-name-for-upstream-changelog: CHANGELOG.md keeps its name, the one
#   the README and docs/ link it by.
accepted_lintian='^W: rtinspect: (shared-library-lacks-prerequisites \[usr/bin/rtinspect\]|initial-upload-closes-no-bugs \[usr/share/doc/rtinspect/changelog\.Debian\.gz:1\]|wrong-name-for-upstream-changelog \[usr/share/doc/rtinspect/CHANGELOG\.md\])$'
expected_files=$(printf '%s\n' \
  ./etc/default/rtinspect \
  ./usr/bin/rtinspect \
  ./usr/lib/systemd/system/rtinspect.service \
  ./usr/lib/systemd/system/rtinspect-prune.service \
  ./usr/lib/systemd/system/rtinspect-prune.timer \
  ./usr/share/doc/rtinspect/README \
  ./usr/share/doc/rtinspect/ARCHITECTURE.md \
  ./usr/share/doc/rtinspect/CHANGELOG.md \
  ./usr/share/doc/rtinspect/CONTRIBUTING.md \
  $(cd docs && printf './usr/share/doc/rtinspect/docs/%s\n' *.md) \
  ./usr/share/doc/rtinspect/examples/rtinspect.rules.yml \
  ./usr/share/rtinspect/grafana/rtinspect.json \
  ./usr/share/doc/rtinspect/docs/images/status-page.png \
  ./usr/share/doc/rtinspect/changelog.Debian.gz \
  ./usr/share/doc/rtinspect/copyright \
  ./usr/share/man/man1/rtinspect.1.gz | sort)

check_deb() {
  local t=$1 a=${deb_arch[$1]} deb lint rc errors warnings other contents ref
  deb=$(cargo deb --no-build --target "$t" --output "$work/$a" 2>/dev/null | tail -n 1)
  if [ ! -f "$deb" ]; then fail "$t: cargo deb built nothing"; return; fi
  deb_of[$t]=$deb
  [ "$(basename "$deb")" = "rtinspect_${version}-1_${a}.deb" ] && pass "$a: $(basename "$deb")" ||
    fail "$a: unexpected name $(basename "$deb")"
  summary+=("deb $a: $(stat -c %s "$deb") bytes")

  # lintian exits 2 when it reports an error tag (--fail-on error), 1 when it
  # could not check.
  rc=0
  lint=$(lintian --tag-display-limit 0 "$deb" 2>"$work/lintian-$a.err") || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 2 ]; then
    fail "$a: lintian did not run ($rc): $(cat "$work/lintian-$a.err")"; return
  fi
  errors=$(grep -c '^E: ' <<<"$lint" || true)
  warnings=$(grep -c '^W: ' <<<"$lint" || true)
  other=$(grep -E '^[EW]: ' <<<"$lint" | grep -Ev "$accepted_lintian" || true)
  if [ -z "$other" ]; then
    pass "$a: lintian: $errors errors, $warnings accepted warnings"
  else
    fail "$a: lintian:"; printf '%s\n' "$other" >&2
  fi
  grep -E '^[EWIN]: ' <<<"$lint" | sed "s/^/  lintian $a: /" >&2 || true
  summary+=("lintian $a: $errors errors, $warnings warnings")

  contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | grep -v '/$' | sort)
  if [ "$contents" = "$expected_files" ]; then
    pass "$a: dpkg-deb -c: the expected files"
  else
    fail "$a: dpkg-deb -c: got"; printf '%s\n' "$contents" >&2
  fi
  [ "$(dpkg-deb -f "$deb" Architecture)" = "$a" ] && pass "$a: Architecture: $a" ||
    fail "$a: Architecture is $(dpkg-deb -f "$deb" Architecture)"
  [ "$(dpkg-deb -f "$deb" Depends)" = adduser ] && pass "$a: Depends: adduser" ||
    fail "$a: Depends is $(dpkg-deb -f "$deb" Depends)"
  [ "$(dpkg-deb -I "$deb" conffiles)" = /etc/default/rtinspect ] &&
    pass "$a: the one conffile is /etc/default/rtinspect" ||
    fail "$a: conffiles: $(dpkg-deb -I "$deb" conffiles)"
  mkdir -p "$work/x-$a"
  dpkg-deb -x "$deb" "$work/x-$a/data"
  dpkg-deb -e "$deb" "$work/x-$a/DEBIAN"
  cmp -s "$work/x-$a/data/usr/bin/rtinspect" "$(binary "$t")" &&
    pass "$a: /usr/bin/rtinspect is the binary checked above" ||
    fail "$a: /usr/bin/rtinspect differs from $(binary "$t")"
  # The Grafana dashboard, as tests/dashboard.rs checks it against Prometheus.
  cmp -s "$work/x-$a/data/usr/share/rtinspect/grafana/rtinspect.json" packaging/grafana/rtinspect.json &&
    pass "$a: /usr/share/rtinspect/grafana/rtinspect.json is packaging/grafana/rtinspect.json" ||
    fail "$a: the dashboard differs from packaging/grafana/rtinspect.json"
  # Against the first architecture's package: the same unit, conffile,
  # maintainer scripts and documents.
  ref="$work/x-${deb_arch[${targets[0]}]}"
  if [ "$t" != "${targets[0]}" ] && [ -d "$ref" ]; then
    if diff -r -x control "$ref/DEBIAN" "$work/x-$a/DEBIAN" >&2 &&
       diff -r "$ref/data/etc" "$work/x-$a/data/etc" >&2 &&
       diff -r "$ref/data/usr/lib" "$work/x-$a/data/usr/lib" >&2 &&
       diff -r "$ref/data/usr/share" "$work/x-$a/data/usr/share" >&2; then
      pass "$a: same control files, unit, conffile and documents as ${deb_arch[${targets[0]}]}"
    else
      fail "$a: differs from the ${deb_arch[${targets[0]}]} package beyond the binary"
    fi
  fi
}

for t in "${targets[@]}"; do check_deb "$t"; done

# 3. Install, upgrade keeping an edited conffile, remove, purge: this machine's
# architecture's package, and a later revision of it for the upgrade.
deb=${deb_of[$host_target]:-}
[ -n "$deb" ] || { fail "no amd64 .deb to install"; say "packaging: $passes passed, $failures failed"; exit 1; }
deb2=$(cargo deb --no-build --target "$host_target" --deb-revision 2 --output "$work/v2" 2>/dev/null | tail -n 1)
[ -f "$deb2" ] || { fail "cargo deb --deb-revision 2 built nothing"; exit 1; }
installed=1
dpkg -i "$deb" >/dev/null 2>"$work/dpkg.err" || { cat "$work/dpkg.err" >&2; fail "dpkg -i"; }
[ "$(/usr/bin/rtinspect --version)" = "rtinspect $version" ] &&
  pass "installed: $(/usr/bin/rtinspect --version)" || fail "/usr/bin/rtinspect --version"
getent passwd rtinspect >/dev/null && pass "system user rtinspect" || fail "no rtinspect user"
unit=/usr/lib/systemd/system/rtinspect.service
prune_units=(/usr/lib/systemd/system/rtinspect-prune.service /usr/lib/systemd/system/rtinspect-prune.timer)
for u in "$unit" "${prune_units[@]}"; do
  if verify=$(systemd-analyze verify "$u" 2>&1); then
    pass "systemd-analyze verify $(basename "$u")"
  else
    # Without a running systemd, verify may only complain about the docker group
    # or the missing docker.service; anything else is a unit error.
    real=$(grep -v -e 'docker' -e 'postgresql' -e 'network-online' <<<"$verify" || true)
    [ -z "$real" ] && pass "systemd-analyze verify $(basename "$u") (only outside units missing)" ||
      fail "systemd-analyze verify $(basename "$u"): $verify"
  fi
done
score=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | tail -n 1 || true)
say "security: $score"
summary+=("exposure: ${score:-n/a}")
score=$(systemd-analyze security --offline=true "${prune_units[0]}" 2>/dev/null | tail -n 1 || true)
summary+=("exposure of rtinspect-prune.service: ${score:-n/a}")
# The pruning timer ships disabled: one machine of a fleet enables it.
if [ -e /etc/systemd/system/timers.target.wants/rtinspect-prune.timer ]; then
  fail "rtinspect-prune.timer was enabled by the install"
else
  pass "rtinspect-prune.timer is installed disabled"
fi

echo "RTINSPECT_INTERVAL=42s" >> /etc/default/rtinspect
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb2" >/dev/null
grep -qx 'RTINSPECT_INTERVAL=42s' /etc/default/rtinspect && pass "upgrade kept the edited conffile" ||
  fail "upgrade lost the conffile edit"
[ "$(dpkg-query -W -f '${Version}' rtinspect)" = "${version}-2" ] || fail "upgrade did not install revision 2"

dpkg -r rtinspect >/dev/null
[ ! -e /usr/bin/rtinspect ] || fail "remove left /usr/bin/rtinspect"
[ -e /etc/default/rtinspect ] || fail "remove dropped the conffile (only purge should)"
getent passwd rtinspect >/dev/null || fail "remove dropped the user (only purge should)"
mkdir -p /var/lib/rtinspect
dpkg -P rtinspect >/dev/null
installed=""
left=()
for f in /usr/bin/rtinspect /etc/default/rtinspect "$unit" "${prune_units[@]}" /usr/share/doc/rtinspect /var/lib/rtinspect; do
  [ -e "$f" ] && left+=("$f")
done
getent passwd rtinspect >/dev/null && left+=("user rtinspect")
getent group rtinspect >/dev/null && left+=("group rtinspect")
[ ${#left[@]} -eq 0 ] && pass "purge left nothing behind" || fail "purge left: ${left[*]}"

# 4. The images, one per architecture (no multi-arch manifest: that needs a
# registry), built on the real dockerd for their platform. Each holds the
# checked binary and nothing else, runs as 65534, and reports the sick
# container with `once`: the amd64 image natively; the arm64 one with its
# entrypoint replaced by a bind-mounted qemu-aarch64-static (a static amd64
# binary) that runs the image's own /usr/bin/rtinspect, as the image's user.
check_image() {
  local t=$1 a=${deb_arch[$1]} tag="rtinspect:check-$1" ctx="$work/image-$1" got layer out qemu
  local run=(--rm --network none --platform "linux/$a" -v "$sock:/var/run/docker.sock"
    --group-add "$(stat -c %g "$sock")")
  mkdir -p "$ctx"
  cp "$(binary "$t")" "$ctx/rtinspect"; cp packaging/Dockerfile "$ctx/"
  if ! DOCKER_BUILDKIT=0 docker_ build -q --platform "linux/$a" -t "$tag" "$ctx" >/dev/null 2>"$work/build-$a.err"; then
    fail "$a: docker build: $(cat "$work/build-$a.err")"; return
  fi
  images="${images:-} $tag"
  summary+=("image $a: $(docker_ image inspect -f '{{.Size}}' "$tag") bytes")
  got=$(docker_ image inspect -f '{{.Os}}/{{.Architecture}} {{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}} {{len .RootFS.Layers}}' "$tag")
  [ "$got" = "linux/$a 65534:65534 [\"/usr/bin/rtinspect\"] [\"run\"] 1" ] &&
    pass "$a: image is linux/$a, user 65534, entrypoint rtinspect run, one layer" ||
    fail "$a: image config: $got"
  # The one layer, named by manifest.json in both the legacy and the OCI
  # layout of `docker save`.
  layer="$work/layer-$a"; mkdir -p "$layer/save" "$layer/fs"
  docker_ save "$tag" | tar -x -C "$layer/save"
  got=$(grep -o '"Layers":\["[^"]*"' "$layer/save/manifest.json" | cut -d'"' -f4 || true)
  [ -n "$got" ] && tar -x -C "$layer/fs" -f "$layer/save/$got" || true
  layer="$layer/fs"
  if [ "$(cd "$layer" && find . ! -type d | sort)" = ./usr/bin/rtinspect ] &&
     cmp -s "$layer/usr/bin/rtinspect" "$(binary "$t")"; then
    pass "$a: the image holds the checked binary and nothing else"
  else
    fail "$a: the image's files: $(cd "$layer" && find . ! -type d | tr '\n' ' ')"
  fi
  [ -n "$sick" ] || return 0
  if [ -z "${runner[$t]}" ]; then
    out=$(timeout 120 docker -H "$docker_host" run "${run[@]}" "$tag" once --label "$label" \
      2>"$work/image-$a.err" || true)
  else
    qemu=$(command -v "${runner[$t]}")
    out=$(timeout 120 docker -H "$docker_host" run "${run[@]}" -v "$qemu:/qemu:ro" --entrypoint /qemu \
      "$tag" /usr/bin/rtinspect once --label "$label" 2>"$work/image-$a.err" || true)
  fi
  reported_sick "$a image${runner[$t]:+ under ${runner[$t]}}" "$out" "$work/image-$a.err"
}

if [ -n "$sick" ]; then
  for t in "${targets[@]}"; do check_image "$t"; done
fi

say "summary: $(printf '%s; ' "${summary[@]}")"
echo "packaging: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
