#!/usr/bin/env bash
# prepare-kit.sh: fetch a stock Debian kernel and build the initramfs that
# scripts/vm/run boots.
#
#   scripts/vm/prepare-kit.sh                 # 6.12 from bookworm-security
#   VM_KERNEL=6.1 scripts/vm/prepare-kit.sh   # 6.1 from bookworm
#   VM_KERNEL_PKG=linux-image-6.12-amd64 scripts/vm/prepare-kit.sh
#
# The kit goes to ${LVSKIT_VM_DIR:-<repo>/.vm}/<flavor>/ (gitignored):
#   vmlinuz, vmlinux (extracted from it, booted through PVH when the kernel
#   has CONFIG_PVH), initramfs.cpio.gz, kver, modules (the preload list),
#   root/ (the unpacked package, depmod'ed: the guest's /lib/modules), kit.ok.
# It is skipped when kit.ok names the package version apt would fetch now.
# The kernel is fetched with `apt-get download` and unpacked with `dpkg -x`;
# nothing is installed into /boot. Needs root (apt, mknod). Missing host
# tools are apt-get installed.
set -euo pipefail

# shellcheck source=scripts/vm/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log() { printf 'prepare-kit: %s\n' "$*" >&2; }

# Modules preloaded at boot besides every ip_vs* module. crc32c_generic comes
# first: busybox modprobe ignores the soft dependency libcrc32c has on it.
extra_modules=(
	crc32c_generic
	nf_conntrack veth dummy bridge macvlan ipip ip_gre ip6_tunnel
	tunnel4 tunnel6 fou
	9p 9pnet_virtio virtio_pci virtio_console overlay
)

apt_get() {
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}

ensure_host_tools() {
	local need=() tool pkg
	for tool in qemu-system-x86_64:qemu-system-x86 modprobe:kmod depmod:kmod \
		cpio:cpio xz:xz-utils zstd:zstd gzip:gzip; do
		command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
	done
	# The initramfs needs the static busybox, not the dynamic one.
	[[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) == "install ok installed" ]] ||
		need+=(busybox-static)
	((${#need[@]})) || return 0
	log "installing host tools: ${need[*]}"
	apt_get install -y --no-install-recommends "${need[@]}" ||
		{ apt_get update && apt_get install -y --no-install-recommends "${need[@]}"; }
}

# field NAME prints a field of the apt-cache show stanza on stdin.
field() { sed -n "s/^$1: //p" | head -n1; }

# resolve_package PKG prints "ABI-PACKAGE VERSION": a meta package is followed
# through its Depends to the linux-image-<abi> package that holds vmlinuz.
# Versions are the ones apt would fetch now.
resolve_package() {
	local pkg=$1 show dep version
	show=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null) || true
	if [[ -z $show ]]; then
		log "$pkg not known to apt; running apt-get update"
		apt_get update -qq
		show=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null) ||
			vm_die "package $pkg not found by apt-cache"
	fi
	version=$(field Version <<<"$show")
	dep=$(field Depends <<<"$show" | sed 's/[,|]/\n/g' |
		sed -n 's/^ *\(linux-image-[^ ]*\).*/\1/p' | head -n1)
	if [[ -n $dep ]]; then
		resolve_package "$dep"
		return
	fi
	printf '%s %s\n' "$pkg" "$version"
}

meta_package() {
	if [[ -n ${VM_KERNEL_PKG:-} ]]; then
		printf '%s\n' "$VM_KERNEL_PKG"
		return
	fi
	case ${VM_KERNEL:-6.12} in
	6.12) printf 'linux-image-6.12-amd64\n' ;;
	6.1) printf 'linux-image-amd64\n' ;;
	*) vm_die "unknown VM_KERNEL=$VM_KERNEL (want 6.12 or 6.1, or set VM_KERNEL_PKG)" ;;
	esac
}

# module_closure ROOT KVER MODULE... prints "insmod PATH" and "load NAME"
# lines: the files to copy (dependencies first) and the modules to preload.
# Built-in and missing modules are reported and skipped.
module_closure() {
	local root=$1 kver=$2 mod out line
	shift 2
	for mod in "$@"; do
		if ! out=$(modprobe -d "$root" -S "$kver" --show-depends "$mod" 2>&1); then
			log "skipping $mod: ${out//$'\n'/ }"
			continue
		fi
		if [[ $out == builtin* && $out != *insmod* ]]; then
			log "skipping $mod: built in"
			continue
		fi
		while read -r line; do
			[[ $line == insmod\ * ]] && printf 'insmod %s\n' "$(awk '{print $2}' <<<"$line")"
		done <<<"$out"
		printf 'load %s\n' "$mod"
	done
}

# build_initramfs ROOT KVER OUT: busybox, the decompressed module closure
# (depmod'ed, so modprobe works inside) and the preload list.
build_initramfs() {
	local root=$1 kver=$2 out=$3 stage ko rel dest applet
	local moddir=$root/lib/modules/$kver
	stage=$(mktemp -d "$vm_base/.stage.XXXXXX")
	cleanup+=("$stage")

	mkdir -p "$stage"/{bin,sbin,dev,proc,sys,run,tmp,etc,host,newroot,rw,share}
	mkdir -p "$stage/lib/modules/$kver"
	cp /bin/busybox "$stage/bin/busybox"
	while read -r applet; do
		[[ -e $stage/$applet || -L $stage/$applet ]] && continue
		mkdir -p "$stage/$(dirname "$applet")"
		ln -s /bin/busybox "$stage/$applet"
	done < <(/bin/busybox --list-full)
	ln -sf /bin/busybox "$stage/sbin/modprobe"
	mknod -m 600 "$stage/dev/console" c 5 1
	mknod -m 666 "$stage/dev/null" c 1 3

	local mods=()
	mapfile -t mods < <(
		printf '%s\n' "${extra_modules[0]}"
		find "$moddir" -name 'ip_vs*.ko*' -printf '%f\n' | sed 's/\.ko.*//' | sort
		printf '%s\n' "${extra_modules[@]:1}"
	)
	local closure
	closure=$(module_closure "$root" "$kver" "${mods[@]}")
	sed -n 's/^load //p' <<<"$closure" >"$stage/etc/lvskit-modules"
	printf '%s\n' "$kver" >"$stage/etc/lvskit-kver"
	while read -r ko; do
		rel=${ko#"$moddir"/}
		dest=$stage/lib/modules/$kver/${rel%.xz}
		dest=${dest%.zst}
		[[ -e $dest ]] && continue
		mkdir -p "$(dirname "$dest")"
		case $ko in
		*.xz) xz -dc "$ko" >"$dest" ;;
		*.zst) zstd -qdc "$ko" >"$dest" ;;
		*) cp "$ko" "$dest" ;;
		esac
	done < <(sed -n 's/^insmod //p' <<<"$closure" | awk '!seen[$0]++')
	cp "$moddir"/modules.{order,builtin,builtin.modinfo} "$stage/lib/modules/$kver/" 2>/dev/null || true
	depmod -b "$stage" "$kver"
	log "initramfs: $(find "$stage/lib/modules" -name '*.ko' | wc -l) modules, preload list: $(wc -l <"$stage/etc/lvskit-modules")"

	(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --quiet --null -o -H newc -R 0:0 --reproducible) | gzip -6 >"$out.tmp"
	mv "$out.tmp" "$out"
	cp "$stage/etc/lvskit-modules" "$(dirname "$out")/modules"
	rm -rf "$stage"
}

cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

# extract_vmlinux BZIMAGE OUT writes the uncompressed ELF kernel a bzImage
# carries. qemu boots it through its PVH entry (CONFIG_PVH), skipping the
# decompressor: seconds under TCG (xz on 6.1, zstd on 6.12).
extract_vmlinux() {
	local in=$1 out=$2 entry magic off
	for entry in '\x28\xb5\x2f\xfd zstd -dcq' '\xfd7zXZ\x00 xz -dcq --single-stream' \
		'\x1f\x8b\x08 gzip -dcq'; do
		magic=${entry%% *}
		while read -r off; do
			# shellcheck disable=SC2086 # the tool's words
			tail -c +$((off + 1)) "$in" | ${entry#* } >"$out" 2>/dev/null || true
			[[ $(head -c 4 "$out" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]] && return 0
		done < <(LC_ALL=C grep -obUaP "$magic" "$in" | cut -d: -f1)
	done
	rm -f "$out"
	return 1
}

# Bump when the kit's layout changes, so prepared kits are rebuilt.
kit_format=2

main() {
	[[ $(id -u) == 0 ]] || vm_die "prepare-kit.sh needs root (apt-get, mknod)"
	mkdir -p "$vm_base"
	exec 9>"$vm_base/.prepare.lock"
	flock 9

	ensure_host_tools
	local meta pkg version kit stamp
	meta=$(meta_package)
	read -r pkg version < <(resolve_package "$meta")
	kit=$(vm_kit_dir)
	stamp="$pkg $version kit$kit_format"
	if [[ -f $kit/kit.ok && $(<"$kit/kit.ok") == "$stamp" ]]; then
		log "kit for $pkg $version is ready in $kit"
		return
	fi

	# Build aside and swap it in, so a run never sees half a kit.
	log "preparing $kit from $meta -> $pkg $version"
	local new=$kit.new dl
	rm -rf "$new"
	mkdir -p "$new"
	cleanup+=("$new")
	dl=$(mktemp -d "$vm_base/.download.XXXXXX")
	cleanup+=("$dl")
	chmod 755 "$dl"
	(cd "$dl" && apt_get download -q -o APT::Sandbox::User=root "$pkg=$version")
	dpkg -x "$dl"/*.deb "$new/root"
	rm -rf "$dl"

	# Packages from trixie on ship /usr/lib/modules; depmod -b wants /lib.
	[[ -e $new/root/lib ]] || ln -s usr/lib "$new/root/lib"
	local kver
	kver=$(find "$new/root/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | head -n1)
	[[ -n $kver && -f $new/root/boot/vmlinuz-$kver ]] || vm_die "no kernel found in $pkg"
	depmod -b "$new/root" "$kver"
	ln -s "root/boot/vmlinuz-$kver" "$new/vmlinuz"
	if grep -q '^CONFIG_PVH=y' "$new/root/boot/config-$kver" 2>/dev/null &&
		extract_vmlinux "$new/vmlinuz" "$new/vmlinux"; then
		log "extracted vmlinux for PVH boot"
	else
		log "no PVH-bootable vmlinux; the runner boots the bzImage"
	fi
	printf '%s\n' "$kver" >"$new/kver"
	build_initramfs "$new/root" "$kver" "$new/initramfs.cpio.gz"
	printf '%s\n' "$stamp" >"$new/kit.ok"

	rm -rf "$kit.old"
	[[ ! -e $kit ]] || mv "$kit" "$kit.old"
	mv "$new" "$kit"
	rm -rf "$kit.old"
	log "kit ready: $kit ($kver, $(du -sh "$kit" | cut -f1))"
}

main "$@"
