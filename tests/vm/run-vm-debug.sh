#!/bin/sh
# The VM tests on the debug test kernel (run-vm.sh, SVA_VM_KERNEL=debug).
SVA_VM_KERNEL=debug exec "$(dirname "$0")/run-vm.sh" "$@"
