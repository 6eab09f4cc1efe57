#!/bin/bash
# cuda12-toolkit.sh [DEST]: a CUDA 12 compiler for compile checks on a machine without a GPU (default DEST: build/cuda12).
#
# Debian 12's CUDA 11.8 (what .ci/run installs) cannot compile sm_90a code (Hopper's wgmma) nor the FP8 mma.sync path
# (PTX ISA 8.4), so those kernels would first be compiled on the GPU machine, inside its few minutes. This fetches
# Debian 13 (trixie)'s nvidia-cuda-toolkit 12.x (nvcc, cicc, ptxas, cuobjdump), its libdevice (libnvvm4) and the CUDA
# headers (nvidia-cuda-dev's usr/include and libcu++-dev's, whose <nv/target> CUDA 12's headers include) into DEST without installing anything: trixie's InRelease is verified
# with Debian's archive keyring, the Packages index against it, each .deb against the index. Compile only: DEST has no
# CUDA libraries (no linking, no running). Used by CudaSm90aCompileTests; .ci/run calls it and goes on without it
# where the archive cannot be reached (those tests then skip and say why).
set -euo pipefail
dest=${1:-build/cuda12}
mirror=${DSK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
if [ -x "$dest/bin/nvcc" ] && [ -e "$dest/include/nv/target" ]; then
  echo "cuda12-toolkit: $dest already holds $("$dest/bin/nvcc" --version | grep -o 'release [0-9.]*')"
  exit 0
fi
for tool in curl gpgv xz dpkg-deb sha256sum; do
  command -v "$tool" >/dev/null || { echo "cuda12-toolkit: $tool is required" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

curl -fsS --retry 2 -o "$tmp/InRelease" "$mirror/dists/$suite/InRelease"
gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg "$tmp/InRelease" 2>"$tmp/gpgv.log" \
  || { cat "$tmp/gpgv.log" >&2; echo "cuda12-toolkit: $suite's InRelease does not verify" >&2; exit 1; }
# The SHA256 section lists 64-hex-digit hashes; MD5Sum's are 32.
index() { # index COMPONENT/binary-ARCH: download that Packages index (checked against InRelease) to $tmp/Packages.COMPONENT
  local sha
  sha=$(awk -v F="$1/Packages.xz" 'length($1) == 64 && $3 == F { print $1 }' "$tmp/InRelease" | tail -1)
  [ -n "$sha" ] || { echo "cuda12-toolkit: InRelease lists no $1/Packages.xz" >&2; exit 1; }
  # By hash (trixie's InRelease says Acquire-By-Hash): a mirror caught between two updates still serves this version.
  curl -fsS --retry 2 -o "$tmp/idx.xz" "$mirror/dists/$suite/$1/by-hash/SHA256/$sha"
  echo "$sha  $tmp/idx.xz" | sha256sum -c --quiet - || { echo "cuda12-toolkit: $1/Packages.xz hash mismatch" >&2; exit 1; }
  xz -dc "$tmp/idx.xz" >"$tmp/Packages.${1%%/*}"
  rm "$tmp/idx.xz"
}
index non-free/binary-amd64
index main/binary-amd64  # lists the architecture-independent packages too

fetch() { # fetch PACKAGE COMPONENT: download its .deb (the index's current version) and check its hash
  local fields file sha
  fields=$(awk -v P="$1" '$0 == "Package: " P { on = 1 } on && /^Filename: / { f = $2 } on && /^SHA256: / { s = $2 }
                          on && /^$/ { print f, s; exit }' "$tmp/Packages.$2")
  read -r file sha <<<"$fields"
  [ -n "${file:-}" ] && [ -n "${sha:-}" ] || { echo "cuda12-toolkit: $1 is not in $suite's $2 index" >&2; exit 1; }
  echo "cuda12-toolkit: $(basename "$file")" >&2
  curl -fsS --retry 2 -o "$tmp/$1.deb" "$mirror/$file"
  echo "$sha  $tmp/$1.deb" | sha256sum -c --quiet - || { echo "cuda12-toolkit: $1.deb hash mismatch" >&2; exit 1; }
}
fetch nvidia-cuda-toolkit non-free
fetch libnvvm4 non-free
fetch nvidia-cuda-dev non-free
fetch libcu++-dev main  # <nv/target> and <cuda/std/...>, which CUDA 12's own headers include

root="$tmp/root"
mkdir -p "$root"
dpkg-deb -x "$tmp/nvidia-cuda-toolkit.deb" "$root"
dpkg-deb -x "$tmp/libnvvm4.deb" "$root"
rm "$tmp/nvidia-cuda-toolkit.deb" "$tmp/libnvvm4.deb"
dpkg-deb --fsys-tarfile "$tmp/nvidia-cuda-dev.deb" | tar -x -C "$root" --wildcards './usr/include/*'
dpkg-deb --fsys-tarfile "$tmp/libcu++-dev.deb" | tar -x -C "$root" --wildcards './usr/include/*'
rm "$tmp/nvidia-cuda-dev.deb" "$tmp/libcu++-dev.deb"

rm -rf "$dest.part"
mkdir -p "$dest.part/bin"
cp -a "$root/usr/lib/nvidia-cuda-toolkit/bin/." "$dest.part/bin/"
for t in ptxas fatbinary nvlink cudafe++ cuobjdump nvdisasm bin2c nvprune cu++filt; do
  [ -e "$root/usr/bin/$t" ] && cp -a "$root/usr/bin/$t" "$dest.part/bin/"
done
cp -a "$root/usr/lib/nvidia-cuda-toolkit/libdevice" "$dest.part/libdevice"
cp -a "$root/usr/include" "$dest.part/include"
# Links to absolute paths point into this machine's own files (Debian's bin/nvcc.profile -> /etc/nvcc.profile, the
# installed CUDA 11.8's profile): drop them, so that nothing below can write through one.
find "$dest.part" -type l -lname '/*' -delete
# nvcc reads nvcc.profile beside itself; Debian's names /usr paths, this one paths relative to DEST.
cat >"$dest.part/bin/nvcc.profile" <<'PROFILE'
NVVMIR_LIBRARY_DIR = $(_HERE_)/../libdevice
PATH		+= $(_HERE_):
INCLUDES	+= "-I$(_HERE_)/../include" $(_SPACE_)
PROFILE
rm -rf "$dest"
mv "$dest.part" "$dest"
echo "cuda12-toolkit: $dest holds $("$dest/bin/nvcc" --version | grep -o 'release [0-9.]*')"
