#!/usr/bin/env bash
# Builds and checks what ships: the static musl binary, the .deb (lintian,
# contents, install, upgrade, remove, purge) and the from-scratch image (run
# against the real dockerd). Needs root; installs the package on this machine
# for the duration, so it refuses to run where rtinspect is installed already.
#
#   RTINSPECT_TEST_DOCKER_HOST  the dockerd for the image check (unix:///path)
#
# Prints a summary with the sizes and the unit's exposure score.
set -euo pipefail

cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
bin="target/$target/release/rtinspect"
work=$(mktemp -d /tmp/rtinspect-pkg.XXXXXX)
docker_host="${RTINSPECT_TEST_DOCKER_HOST:-unix:///var/run/docker.sock}"
failures=0
passes=0
summary=()

say() { printf 'packaging/check.sh: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; failures=$((failures + 1)); }
pass() { say "ok: $*"; passes=$((passes + 1)); }

cleanup() {
  if [ -n "${installed:-}" ]; then dpkg -P rtinspect >/dev/null 2>&1 || true; fi
  if [ -n "${containers:-}" ]; then docker -H "$docker_host" rm -f $containers >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { say "needs root (dpkg -i)"; exit 1; }
if dpkg -s rtinspect >/dev/null 2>&1; then
  say "rtinspect is installed on this machine; not touching it"
  exit 1
fi

# Tools: the musl target, cargo-deb, lintian, systemd-analyze, file.
rustup target list --installed 2>/dev/null | grep -qx "$target" ||
  rustup target add "$target"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v file >/dev/null || missing+=(file)
# ring, the TLS crypto, has C and assembly that musl-gcc compiles.
command -v musl-gcc >/dev/null || missing+=(musl-tools)
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# 1. The static binary.
cargo build --release --locked --target "$target" --quiet
if file "$bin" | grep -Eq 'static-pie linked|statically linked'; then
  pass "static: $(file -b "$bin" | cut -d, -f1-5)"
else
  fail "not static: $(file -b "$bin")"
fi
if ldd "$bin" 2>&1 | grep -Eq 'not a dynamic executable|statically linked'; then
  pass "ldd: not dynamic"
else
  fail "ldd says: $(ldd "$bin" 2>&1 | head -n 3)"
fi
size=$(stat -c %s "$bin")
if [ "$size" -le $((3 * 1024 * 1024)) ]; then
  pass "binary size $size bytes (budget 3 MiB)"
else
  fail "binary size $size bytes is over the 3 MiB budget"
fi
summary+=("binary: $size bytes")
"$bin" --version | grep -q "^rtinspect " || fail "--version"

# 2. The .deb, twice: the release and a later revision, for the upgrade.
deb=$(cargo deb --no-build --target "$target" --output "$work/v1" 2>/dev/null | tail -n 1)
deb2=$(cargo deb --no-build --target "$target" --deb-revision 2 --output "$work/v2" 2>/dev/null | tail -n 1)
[ -f "$deb" ] && [ -f "$deb2" ] || { fail "cargo deb built nothing"; exit 1; }
summary+=("deb: $(stat -c %s "$deb") bytes")

lint=$(lintian --no-tag-display-limit "$deb" 2>&1 || true)
if printf '%s\n' "$lint" | grep -q '^E: '; then
  fail "lintian errors:"; printf '%s\n' "$lint" | grep '^E: ' >&2
else
  pass "lintian: no errors"
fi
# Accepted: shared-library-lacks-prerequisites (lintian takes a static-pie
# executable for a shared library; it has no dynamic section to need anything).
printf '%s\n' "$lint" | grep '^[WI]: ' | sed 's/^/  lintian /' >&2 || true
summary+=("lintian: $(printf '%s\n' "$lint" | grep -c '^E: ' || true) errors, $(printf '%s\n' "$lint" | grep -c '^W: ' || true) warnings")

contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | grep -v '/$' | sort)
expected=$(printf '%s\n' \
  ./etc/default/rtinspect \
  ./usr/bin/rtinspect \
  ./usr/lib/systemd/system/rtinspect.service \
  ./usr/share/doc/rtinspect/README \
  ./usr/share/doc/rtinspect/changelog.Debian.gz \
  ./usr/share/doc/rtinspect/copyright \
  ./usr/share/man/man1/rtinspect.1.gz | sort)
if [ "$contents" = "$expected" ]; then
  pass "dpkg-deb -c: the expected files"
else
  fail "dpkg-deb -c: got"; printf '%s\n' "$contents" >&2
fi
info=$(dpkg-deb -I "$deb")
printf '%s\n' "$info" | grep -q '^ Depends: adduser' || fail "Depends is not adduser"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/default/rtinspect || fail "/etc/default/rtinspect is not a conffile"

# 3. Install, upgrade keeping an edited conffile, remove, purge.
installed=1
dpkg -i "$deb" >/dev/null 2>"$work/dpkg.err" || { cat "$work/dpkg.err" >&2; fail "dpkg -i"; }
[ "$(/usr/bin/rtinspect --version)" = "rtinspect $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)" ] &&
  pass "installed: $(/usr/bin/rtinspect --version)" || fail "/usr/bin/rtinspect --version"
getent passwd rtinspect >/dev/null && pass "system user rtinspect" || fail "no rtinspect user"
unit=/usr/lib/systemd/system/rtinspect.service
if verify=$(systemd-analyze verify "$unit" 2>&1); then
  pass "systemd-analyze verify"
else
  # Without a running systemd, verify may only complain about the docker group
  # or the missing docker.service; anything else is a unit error.
  real=$(printf '%s\n' "$verify" | grep -v -e 'docker' -e 'postgresql' -e 'network-online' || true)
  [ -z "$real" ] && pass "systemd-analyze verify (only outside units missing)" ||
    fail "systemd-analyze verify: $verify"
fi
score=$(systemd-analyze security --offline=true "$unit" 2>/dev/null | tail -n 1 || true)
say "security: $score"
summary+=("exposure: ${score:-n/a}")

echo "RTINSPECT_INTERVAL=42s" >> /etc/default/rtinspect
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb2" >/dev/null
grep -qx 'RTINSPECT_INTERVAL=42s' /etc/default/rtinspect && pass "upgrade kept the edited conffile" ||
  fail "upgrade lost the conffile edit"
dpkg -s rtinspect | grep -q '^Version: .*-2$' || fail "upgrade did not install revision 2"

dpkg -r rtinspect >/dev/null
[ ! -e /usr/bin/rtinspect ] || fail "remove left /usr/bin/rtinspect"
[ -e /etc/default/rtinspect ] || fail "remove dropped the conffile (only purge should)"
getent passwd rtinspect >/dev/null || fail "remove dropped the user (only purge should)"
mkdir -p /var/lib/rtinspect
dpkg -P rtinspect >/dev/null
installed=""
left=()
for f in /usr/bin/rtinspect /etc/default/rtinspect "$unit" /usr/share/doc/rtinspect /var/lib/rtinspect; do
  [ -e "$f" ] && left+=("$f")
done
getent passwd rtinspect >/dev/null && left+=("user rtinspect")
getent group rtinspect >/dev/null && left+=("group rtinspect")
[ ${#left[@]} -eq 0 ] && pass "purge left nothing behind" || fail "purge left: ${left[*]}"

# 4. The image, built and run on the real dockerd.
if docker -H "$docker_host" version >/dev/null 2>&1; then
  ctx="$work/image"; mkdir -p "$ctx"
  cp "$bin" "$ctx/rtinspect"; cp packaging/Dockerfile "$ctx/"
  DOCKER_BUILDKIT=0 docker -H "$docker_host" build -q -t rtinspect:check "$ctx" >/dev/null
  summary+=("image: $(docker -H "$docker_host" image inspect -f '{{.Size}}' rtinspect:check) bytes")
  docker -H "$docker_host" image inspect rtinspect-test/busybox:1 >/dev/null 2>&1 || {
    fail "the test image rtinspect-test/busybox:1 is missing (tests/run.sh makes it)"; }
  label="rtinspect-pkg.$$"
  sick=$(docker -H "$docker_host" run -d --network none --label "$label=g-pkg" \
    --health-cmd false --health-interval 1s --health-retries 1 rtinspect-test/busybox:1 sleep 1000)
  containers="$sick"
  for _ in $(seq 1 60); do
    [ "$(docker -H "$docker_host" inspect -f '{{.State.Health.Status}}' "$sick")" = unhealthy ] && break
    sleep 0.5
  done
  sock="${docker_host#unix://}"
  out=$(docker -H "$docker_host" run --rm --network none -v "$sock:/var/run/docker.sock" \
    --group-add "$(stat -c %g "$sock")" rtinspect:check once --label "$label" 2>"$work/image.err") || true
  if printf '%s\n' "$out" | grep -q "\"game_id\":\"g-pkg\",\"container_id\":\"$sick\"" &&
     printf '%s\n' "$out" | grep -q '"health":"unhealthy"'; then
    pass "image: once inside the container reported the unhealthy one"
  else
    fail "image: no event; stdout: $out; stderr: $(cat "$work/image.err")"
  fi
  [ "$(docker -H "$docker_host" image inspect -f '{{.Config.User}}' rtinspect:check)" = "65534:65534" ] ||
    fail "image does not run as 65534"
  docker -H "$docker_host" rmi rtinspect:check >/dev/null
else
  fail "no dockerd at $docker_host for the image check"
fi

say "summary: ${summary[*]}"
echo "packaging: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
