/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * UFFDIO_MOVE (Linux 6.8) for builds against older UAPI headers (Debian 12
 * ships 6.1's). The layout and numbers are the kernel's ABI, copied from
 * linux/userfaultfd.h of 6.12.
 */
#ifndef SVA_SIM_UFFD_MOVE_H
#define SVA_SIM_UFFD_MOVE_H

#include <linux/types.h>
#include <linux/userfaultfd.h>

#ifndef UFFDIO_MOVE
#define UFFD_FEATURE_MOVE			(1 << 16)
#define _UFFDIO_MOVE				(0x05)
#define UFFDIO_MOVE_MODE_DONTWAKE		((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES	((__u64)1 << 1)

struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;	/* written by the kernel */
};

#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#endif /* SVA_SIM_UFFD_MOVE_H */
