"""The shell scripts the apt driver runs on a host, each a constant passed to ``sh -c``
with its data as positional arguments (never spliced into the script).

- rollback material: the installed versions' ``.deb`` files copied from the apt cache,
  else ``apt-get download``, else ``dpkg-repack``, into ``material_dir`` as
  ``NAME_VERSION.deb`` (``:`` in the version written ``%3a``, as apt does); the rollback
  reinstalls them in one apt transaction.
- the versions apt knows of each pinned package, and the reboot-required marker.
"""

# Every version apt knows of each name (repositories and dpkg's status), one block per
# name: "@ NAME" then "V VERSION" lines. Not "apt-cache show NAME=VERSION": that exits 0
# (and prints nothing) for a version no source has (apt 2.6, found by the lab test).
VERSIONS_SCRIPT = r"""
for n in "$@"; do
  echo "@ $n"
  apt-cache show -- "$n" 2>/dev/null | sed -n 's/^Version: /V /p'
done
exit 0
"""

# Keep one .deb per installed version; print SECURED/MISSING lines; exit 3 when some missing.
SECURE_SCRIPT = r"""
dir=$1; cache=$2; shift 2
# apt fetches a local .deb as its sandbox user (_apt) at rollback: the directory must
# be traversable and the files readable by it (they are public packages anyway).
umask 022
mkdir -p -- "$dir" && chmod 0755 -- "$dir" || exit 2
cd -- "$dir" || exit 2
missing=0
for spec in "$@"; do
  name=${spec%%=*}; ver=${spec#*=}; base=${name%%:*}
  enc=$(printf '%s' "$ver" | sed 's/:/%3a/g')
  out="${base}_${enc}.deb"
  if [ ! -s "$out" ]; then
    for f in "$cache/${base}_${enc}"_*.deb; do
      [ -f "$f" ] && cp -- "$f" "$out" && break
    done
  fi
  if [ ! -s "$out" ]; then
    rm -f -- "${base}_${enc}"_*.deb
    if apt-get download -o Debug::NoLocking=1 -- "$name=$ver" >/dev/null 2>&1; then
      for f in "${base}_${enc}"_*.deb; do [ -f "$f" ] && mv -- "$f" "$out" && break; done
    fi
  fi
  if [ ! -s "$out" ] && command -v dpkg-repack >/dev/null 2>&1; then
    inst=$(dpkg-query -W -f='${Version}' -- "$name" 2>/dev/null)
    if [ "$inst" = "$ver" ] && dpkg-repack -- "$name" >/dev/null 2>&1; then
      for f in "${base}_${enc}"_*.deb; do [ -f "$f" ] && mv -- "$f" "$out" && break; done
    fi
  fi
  if [ -s "$out" ]; then chmod 0644 -- "$out"; echo "SECURED $name $ver $dir/$out"
  else echo "MISSING $name $ver"; missing=1; fi
done
[ "$missing" = 0 ] || exit 3
"""

# Reinstall kept .debs (falling back to NAME=VERSION from the repository) and remove
# the packages that were absent (apt-get's NAME- suffix), in one apt transaction.
ROLLBACK_SCRIPT = r"""
dir=$1; shift
n=$#; i=0
while [ "$i" -lt "$n" ]; do
  spec=$1; shift; i=$((i + 1))
  case "$spec" in
    *-) set -- "$@" "$spec" ;;
    *=*)
      name=${spec%%=*}; ver=${spec#*=}; base=${name%%:*}
      enc=$(printf '%s' "$ver" | sed 's/:/%3a/g')
      if [ -s "$dir/${base}_${enc}.deb" ]; then set -- "$@" "$dir/${base}_${enc}.deb"
      else echo "patchgate: no kept .deb for $name=$ver, using the repository" >&2
           set -- "$@" "$spec"; fi ;;
  esac
done
exec apt-get -y --allow-downgrades -o DPkg::Lock::Timeout=120 \
  -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef install "$@"
"""

REBOOT_SCRIPT = (
    "if [ -e /var/run/reboot-required ]; then echo '*** System restart required ***'; "
    "cat /var/run/reboot-required.pkgs 2>/dev/null; fi; exit 0"
)
