// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * sva-bench's peer for the migrate group on kmod: the kernel's own test
 * device, lib/test_hmm.c (module test_hmm, /dev/hmm_dmirror0), whose
 * MIGRATE_TO_DEV / MIGRATE_TO_SYS move the same buffer with the same
 * migrate_vma_*() calls as sva_shim. Only where that module is loaded:
 * the debug test kernel's VM loads it (tests/vm).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bench.h"

/*
 * lib/test_hmm_uapi.h of 6.12, the two calls used: no distribution ships
 * that header (as lib/sim/pagemap_scan.h defines what Debian's lack).
 */
struct hmm_dmirror_cmd {
	uint64_t addr;		/* in: start of the range */
	uint64_t ptr;		/* in: a buffer for the data read back */
	uint64_t npages;	/* in */
	uint64_t cpages;	/* out: pages read back (to dev), moved (to sys) */
	uint64_t faults;	/* out */
};

#define HMM_DMIRROR_MIGRATE_TO_DEV _IOWR('H', 0x02, struct hmm_dmirror_cmd)
#define HMM_DMIRROR_MIGRATE_TO_SYS _IOWR('H', 0x03, struct hmm_dmirror_cmd)

int hmm_peer_open(void)
{
	const char *path = getenv("SVA_BENCH_TEST_HMM");
	int fd = open(path ? path : "/dev/hmm_dmirror0", O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int hmm_peer_migrate(int fd, void *p, void *bounce, size_t npages,
		     bool to_dev)
{
	struct hmm_dmirror_cmd c = {
		.addr = (uintptr_t)p, .ptr = (uintptr_t)bounce,
		.npages = npages,
	};

	if (ioctl(fd, to_dev ? HMM_DMIRROR_MIGRATE_TO_DEV :
			       HMM_DMIRROR_MIGRATE_TO_SYS, &c))
		return -errno;
	/* Not the same work if not every page moved. */
	return c.cpages == npages ? 0 : -EIO;
}
