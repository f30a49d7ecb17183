#!/usr/bin/env bash
# Trims a freshly debootstrapped rootfs before scripts/bootstrap.sh imports it as the
# fixture base image. Usage: cleanup-rootfs.sh <rootfs dir>. Part of the fixture hash.
set -euo pipefail

root=${1:?usage: cleanup-rootfs.sh <rootfs dir>}
[[ -d $root/etc && -d $root/usr ]] || { echo "cleanup-rootfs: $root is not a rootfs" >&2; exit 1; }

# Debian's postgresql-common created a "main" cluster while installing; the fixture
# entrypoint creates its own cluster in $PGDATA, so drop this one.
rm -rf "${root:?}/etc/postgresql/15/main" "${root:?}/var/lib/postgresql/15/main"

# Package caches, lists, docs, man pages, translations: not needed in a test image.
rm -rf "${root:?}"/var/cache/apt/archives/*.deb "${root:?}"/var/cache/apt/*.bin \
	"${root:?}"/var/lib/apt/lists/* "${root:?}"/var/log/*.log "${root:?}"/var/log/apt/* \
	"${root:?}"/usr/share/doc/* "${root:?}"/usr/share/man/* "${root:?}"/usr/share/info/* \
	"${root:?}"/usr/share/lintian "${root:?}"/usr/share/locale/*
# Leave the (now empty) directories in place.
mkdir -p "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale"
# A container has no init system: policy-rc.d keeps any maintainer script from starting services.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
# Machine identity must not be baked into the image.
: >"$root/etc/machine-id"
rm -f "$root/etc/hostname" "$root/var/lib/dbus/machine-id"
