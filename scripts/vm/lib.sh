# shellcheck shell=bash
# Shared by scripts/vm/prepare-kit.sh and scripts/vm/run (sourced, not run).
#
# Kit location: ${LVSKIT_VM_DIR:-<repo>/.vm}/<flavor>/, where <flavor> is
# $VM_KERNEL (6.12 by default, or 6.1), or the package name when only
# VM_KERNEL_PKG is given.

vm_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
vm_base=$(realpath -m -- "${LVSKIT_VM_DIR:-$vm_repo/.vm}")

# vm_flavor prints the kit flavor the environment selects.
vm_flavor() {
	if [[ -n ${VM_KERNEL:-} ]]; then
		printf '%s\n' "$VM_KERNEL"
	elif [[ -n ${VM_KERNEL_PKG:-} ]]; then
		printf '%s\n' "$VM_KERNEL_PKG"
	else
		printf '6.12\n'
	fi
}

vm_kit_dir() {
	printf '%s/%s\n' "$vm_base" "$(vm_flavor)"
}

vm_die() {
	printf 'lvskit vm: %s\n' "$*" >&2
	exit 125
}
