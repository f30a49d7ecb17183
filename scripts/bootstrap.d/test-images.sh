# shellcheck shell=bash
# Piece 4 — the stand-in images the tests (and an offline `scripts/up.sh`) run instead of the
# official postgres:15, timescale/timescaledb:latest-pg15 and redis:7-alpine.
#
# Installs: debootstrap (Debian package) the first time; a Debian bookworm base rootfs made with it
# from the Debian mirror apt uses (<tools>/images/base-*.tar, imported as
# nexanest-fixture/debian-base:<suite>-<hash>); then `docker build` of tests/images/{postgres,
# timescaledb,redis} on that base, tagged as tests/images/tags.txt says (nexanest-fixture/...),
# labelled org.nexanest.fixture=true with a hash of their sources (a changed source is rebuilt).
# Why: no container registry is reachable from the build machines, and the tests need real
# PostgreSQL 15 and Redis 7 servers in containers that follow the official images' contracts.
#
# Stand-ins never take an official name. Earlier versions of this script tagged them as the official
# images; those tags (only images that carry this project's fixture label) are removed here unless a
# container still uses them, so a laptop's local-db gets the official image from the registry.
# NNDB_KEEP_LEGACY_STANDIN_TAGS=1 leaves them (a shared build machine whose other checkouts still use them).
# Sets: IMAGES_READY, STANDIN_TAGS[].

DEBIAN_SUITE=bookworm
BASE_IMAGE_REPO=nexanest-fixture/debian-base
LABEL_NS=org.nexanest.fixture
IMAGES_SRC=$REPO_ROOT/tests/images
IMAGES_DIR=$TOOLS_DIR/images
IMAGES_READY=0
OFFICIAL_IMAGES=()
STANDIN_TAGS=()
STANDIN_CONTEXTS=()

read_image_table() {
	local official standin context
	OFFICIAL_IMAGES=() STANDIN_TAGS=() STANDIN_CONTEXTS=()
	while read -r official standin context; do
		[[ -z $official || $official == \#* ]] && continue
		OFFICIAL_IMAGES+=("$official") STANDIN_TAGS+=("$standin") STANDIN_CONTEXTS+=("$context")
	done <"$IMAGES_SRC/tags.txt"
	((${#STANDIN_TAGS[@]} == 3)) || fail "test images" "tests/images/tags.txt must list 3 images, found ${#STANDIN_TAGS[@]}"
}

debian_mirror() {
	if [[ -n ${NNDB_DEBIAN_MIRROR:-} ]]; then
		printf '%s\n' "$NNDB_DEBIAN_MIRROR"
		return 0
	fi
	local f uri
	# deb822 sources first, then one-line sources; the first mirror serving the suite wins.
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		uri=$(awk -v suite="$DEBIAN_SUITE" '
			function check() { if (!found && u != "" && s ~ ("(^| )" suite "( |$)")) { print u; found = 1 } u = ""; s = "" }
			/^[[:space:]]*$/ { check(); next }
			tolower($1) == "uris:" { u = $2 }
			tolower($1) == "suites:" { $1 = ""; s = $0 " " }
			END { check() }' "$f" || true)
		[[ -n $uri ]] && { printf '%s\n' "$uri"; return 0; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		uri=$(awk -v suite="$DEBIAN_SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) { print $i; exit } }' "$f" || true)
		[[ -n $uri ]] && { printf '%s\n' "$uri"; return 0; }
	done
	printf '%s\n' http://deb.debian.org/debian
}

base_packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$IMAGES_SRC/base/packages.txt" | tr -d ' \t' | paste -sd, -; }

# Hash of everything a database stand-in is made from: the base recipe plus every file in tests/images
# except the exporters' (their own table and hash, exporter_hash).
fixture_hash() {
	(
		cd "$IMAGES_SRC"
		printf 'suite=%s\n' "$DEBIAN_SUITE"
		find . -type f ! -name '*.md' ! -path './exporters/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
	) | sha256sum | cut -c1-16
}

base_hash() {
	(
		printf 'suite=%s\n' "$DEBIAN_SUITE"
		sha256sum "$IMAGES_SRC/base/packages.txt" "$IMAGES_SRC/base/cleanup-rootfs.sh" | cut -d' ' -f1
	) | sha256sum | cut -c1-16
}

image_label() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

# Unmount anything left mounted below DIR (a failed debootstrap leaves /proc etc.), then delete it.
remove_rootfs() {
	local dir=$1 m
	[[ -d $dir ]] || return 0
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
	rm -rf --one-file-system "$dir"
}

ensure_base_image() {
	local bhash=$1 tag=$BASE_IMAGE_REPO:$DEBIAN_SUITE-$1
	BASE_TAG=$tag
	if docker image inspect "$tag" >/dev/null 2>&1; then
		return 0
	fi
	local tarball=$IMAGES_DIR/base-$DEBIAN_SUITE-$bhash.tar
	if [[ ! -s $tarball ]]; then
		[[ $(id -u) == 0 ]] || fail "base rootfs" "debootstrap needs root"
		command -v debootstrap >/dev/null || {
			step_begin "installing debootstrap (first run only)"
			apt_install debootstrap
			step_end
		}
		local mirror rootfs=$IMAGES_DIR/rootfs.tmp
		mirror=$(debian_mirror)
		remove_rootfs "$rootfs"
		step_begin "debootstrap $DEBIAN_SUITE minbase + $(base_packages) from $mirror (first run only, ~40-80 s)"
		run_logged "$LOG_DIR/debootstrap.log" debootstrap --variant=minbase --include="$(base_packages)" \
			"$DEBIAN_SUITE" "$rootfs" "$mirror" || {
			remove_rootfs "$rootfs"
			fail "debootstrap" "could not build the base rootfs from $mirror (set NNDB_DEBIAN_MIRROR to another mirror?); see $LOG_DIR/debootstrap.log"
		}
		bash "$IMAGES_SRC/base/cleanup-rootfs.sh" "$rootfs" >>"$LOG_DIR/debootstrap.log" 2>&1 ||
			fail "base rootfs cleanup" "see $LOG_DIR/debootstrap.log"
		tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.tmp" . ||
			fail "base rootfs tarball" "tar of $rootfs failed (disk full?)"
		mv "$tarball.tmp" "$tarball"
		remove_rootfs "$rootfs"
		rm -f "$IMAGES_DIR"/base-*.tar.tmp
		step_end
	fi
	step_begin "importing the base rootfs as $tag"
	run_logged "$LOG_DIR/docker-import.log" docker import \
		--change "LABEL $LABEL_NS.base-hash=\"$bhash\"" \
		--change "LABEL $LABEL_NS.note=\"NexaNest test fixture base (Debian $DEBIAN_SUITE), not an official image\"" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' \
		"$tarball" "$tag" ||
		fail "docker import" "importing $tarball failed; see $LOG_DIR/docker-import.log"
	step_end
	# Older base tarballs of other recipes are dead weight.
	find "$IMAGES_DIR" -maxdepth 1 -name "base-*.tar" ! -name "base-$DEBIAN_SUITE-$bhash.tar" -delete
}

# build_image TAG CONTEXT_DIR STANDS_IN_FOR FIXTURE_HASH BUILD_ARG...
build_image() {
	local tag=$1 ctx=$2 stands_in=$3 fhash=$4
	shift 4
	local -a args=()
	local a
	for a in "$@"; do args+=(--build-arg "$a"); done
	local log=$LOG_DIR/docker-build-${tag//[\/:]/_}.log
	step_begin "building test image $tag (stands in for $stands_in)"
	run_logged "$log" env DOCKER_BUILDKIT=0 docker build --pull=false --force-rm \
		--label "$LABEL_NS=true" \
		--label "$LABEL_NS.hash=$fhash" \
		--label "$LABEL_NS.stands-in-for=$stands_in" \
		--label "$LABEL_NS.source=tests/images/$(basename "$ctx")" \
		"${args[@]}" -t "$tag" "$ctx" ||
		fail "docker build $tag" "see $log"
	step_end
}

images_current() {
	local tag
	for tag in "${STANDIN_TAGS[@]}"; do
		[[ $(image_label "$tag" "$LABEL_NS.hash") == "$1" ]] || return 1
	done
}

# remove_legacy_standin_tags: official names that an earlier bootstrap gave to a stand-in (fixture label set).
remove_legacy_standin_tags() {
	local name users
	for name in "${OFFICIAL_IMAGES[@]}"; do
		[[ $(image_label "$name" "$LABEL_NS") == true ]] || continue
		if [[ ${NNDB_KEEP_LEGACY_STANDIN_TAGS:-0} == 1 ]]; then
			warn "$name on this engine is an old test stand-in, kept (NNDB_KEEP_LEGACY_STANDIN_TAGS=1); local-db would run it instead of the official image"
			continue
		fi
		users=$(docker ps -aq --filter "ancestor=$name" 2>/dev/null | wc -l)
		if ((users > 0)); then
			warn "$name on this engine is an old test stand-in, still used by $users container(s): not removed; run scripts/bootstrap.sh again once they are gone"
			continue
		fi
		docker image rm "$name" >/dev/null 2>&1 && say "removed the old test stand-in tagged $name (the official image is pulled when a stack needs it)"
	done
}

ensure_images() {
	ensure_database_images
	ensure_exporter_images
}

ensure_database_images() {
	read_image_table
	remove_legacy_standin_tags
	local fhash bhash i
	fhash=$(fixture_hash)
	bhash=$(base_hash)
	if [[ $REBUILD_IMAGES == 0 ]] && images_current "$fhash"; then
		say "test images: ${STANDIN_TAGS[*]} up to date (fixture hash $fhash)"
		IMAGES_READY=1
		return 0
	fi
	mkdir -p "$IMAGES_DIR"
	ensure_base_image "$bhash"
	local postgres_tag=
	for i in "${!STANDIN_TAGS[@]}"; do [[ ${STANDIN_CONTEXTS[$i]} == postgres ]] && postgres_tag=${STANDIN_TAGS[$i]}; done
	# Build order: postgres first, the timescaledb stand-in is that image plus labels (no extension in Debian).
	for i in "${!STANDIN_TAGS[@]}"; do
		local ctx=${STANDIN_CONTEXTS[$i]} base_arg
		if [[ $ctx == timescaledb ]]; then base_arg="PG_IMAGE=$postgres_tag"; else base_arg="BASE_IMAGE=$BASE_TAG"; fi
		build_image "${STANDIN_TAGS[$i]}" "$IMAGES_SRC/$ctx" "${OFFICIAL_IMAGES[$i]} (official image)" "$fhash" "$base_arg"
	done
	# Keep only the current base image; dangling layers of earlier fixture builds go too.
	local old
	for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "$BASE_IMAGE_REPO" 2>/dev/null); do
		[[ $old == "$BASE_TAG" ]] || docker image rm "$old" >/dev/null 2>&1 || true
	done
	local _
	for _ in 1 2 3; do
		docker image prune -f --filter "label=$LABEL_NS=true" >/dev/null 2>&1 || true
	done
	IMAGES_READY=1
}

# --- exporter stand-ins (tests/images/exporters/tags.txt) --------------------------------------------
# Each runs the binary of a pinned Debian package, downloaded with apt-get into a copy of its build
# context (the build itself has no network) and extracted by dpkg-deb in the Dockerfile.
EXPORTERS_SRC=$IMAGES_SRC/exporters
EXPORTER_OFFICIAL=()
EXPORTER_TAGS=()
EXPORTER_CONTEXTS=()
EXPORTER_PACKAGES=()

read_exporter_table() {
	local official standin context package
	EXPORTER_OFFICIAL=() EXPORTER_TAGS=() EXPORTER_CONTEXTS=() EXPORTER_PACKAGES=()
	while read -r official standin context package; do
		[[ -z $official || $official == \#* ]] && continue
		EXPORTER_OFFICIAL+=("$official") EXPORTER_TAGS+=("$standin") EXPORTER_CONTEXTS+=("$context") EXPORTER_PACKAGES+=("$package")
	done <"$EXPORTERS_SRC/tags.txt"
	((${#EXPORTER_TAGS[@]} == 2)) || fail "test images" "tests/images/exporters/tags.txt must list 2 images, found ${#EXPORTER_TAGS[@]}"
}

exporter_hash() {
	(
		printf 'base=%s\n' "$(base_hash)"
		cd "$EXPORTERS_SRC"
		find . -type f ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
	) | sha256sum | cut -c1-16
}

exporters_current() {
	local tag
	for tag in "${EXPORTER_TAGS[@]}"; do
		[[ $(image_label "$tag" "$LABEL_NS.hash") == "$1" ]] || return 1
	done
}

ensure_exporter_images() {
	read_exporter_table
	local ehash i
	ehash=$(exporter_hash)
	if [[ $REBUILD_IMAGES == 0 ]] && exporters_current "$ehash"; then
		say "test images: ${EXPORTER_TAGS[*]} up to date (exporter hash $ehash)"
		return 0
	fi
	mkdir -p "$IMAGES_DIR"
	ensure_base_image "$(base_hash)"
	for i in "${!EXPORTER_TAGS[@]}"; do
		local ctx=$IMAGES_DIR/context-${EXPORTER_CONTEXTS[$i]} package=${EXPORTER_PACKAGES[$i]}
		rm -rf "$ctx"
		cp -r "$EXPORTERS_SRC/${EXPORTER_CONTEXTS[$i]}" "$ctx"
		step_begin "downloading $package (apt-get download)"
		(cd "$ctx" && run_logged "$LOG_DIR/apt-download-${EXPORTER_CONTEXTS[$i]}.log" apt-get download "$package") ||
			fail "apt-get download $package" "see $LOG_DIR/apt-download-${EXPORTER_CONTEXTS[$i]}.log (apt-get update first?)"
		mv "$ctx"/*.deb "$ctx/package.deb"
		step_end
		build_image "${EXPORTER_TAGS[$i]}" "$ctx" "${EXPORTER_OFFICIAL[$i]} (official image)" "$ehash" "BASE_IMAGE=$BASE_TAG"
		rm -rf "$ctx"
	done
}

# standins_present: the current stand-ins are on the engine (for env.sh when images were not built this run).
standins_present() {
	read_image_table
	read_exporter_table
	images_current "$(fixture_hash)" && exporters_current "$(exporter_hash)"
}
