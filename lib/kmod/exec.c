// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Descriptors on the kernel backend. sva_shim moves bytes between the
 * mirror and a buffer of ours, so a descriptor runs as windows of up to
 * KMOD_WINDOW bytes: read what the operation reads into a window, compute,
 * and write what it writes. The kernel writes exactly the destination's
 * bytes into the mirrored pages, so the CPU's stores to the rest of those
 * pages are never undone.
 */
#include <string.h>
#include <sys/ioctl.h>

#include "kmod.h"

struct fault {
	uint32_t status;	/* enum sva_status */
	uint64_t addr;
	unsigned int access;
};

static uint32_t status_of(uint32_t shim_status)
{
	switch (shim_status) {
	case SVA_SHIM_STATUS_PAGE_FAULT:
		return SVA_STATUS_PAGE_FAULT;
	case SVA_SHIM_STATUS_INVALID:
		return SVA_STATUS_FAULT_INVALID;
	default:
		return SVA_STATUS_FAULT_FAILURE;
	}
}

/*
 * Move [addr, addr + len) between the mirror and @buf. Returns the bytes
 * moved before a fault, which goes to @f (attributed to @access).
 */
static uint64_t bytes_io(int fd, bool write, uint64_t addr, uint64_t len,
			 uint8_t *buf, bool block, unsigned int access,
			 struct fault *f)
{
	struct sva_shim_access a = {
		.addr = addr, .len = len, .buf = (uintptr_t)buf,
		.flags = block ? 0 : SVA_SHIM_ACCESS_NO_FAULT,
	};

	if (!len)
		return 0;
	if (ioctl(fd, write ? SVA_SHIM_IOC_WRITE : SVA_SHIM_IOC_READ, &a)) {
		/* Refused outright (past TASK_SIZE): an invalid access. */
		*f = (struct fault){ SVA_STATUS_FAULT_INVALID, addr, access };
		return 0;
	}
	if (a.status == SVA_SHIM_STATUS_OK)
		return len;
	*f = (struct fault){ status_of(a.status), a.fault_addr, access };
	return a.bytes_done;
}

static uint64_t win_read(int fd, uint64_t addr, uint64_t len, uint8_t *win,
			 bool block, struct fault *f)
{
	return bytes_io(fd, false, addr, len, win, block, SVA_ACCESS_READ, f);
}

static uint64_t win_write(int fd, uint64_t dst, uint64_t len,
			  const uint8_t *data, bool block, struct fault *f)
{
	return bytes_io(fd, true, dst, len, (uint8_t *)data, block,
			SVA_ACCESS_WRITE, f);
}

struct run {
	struct kmod_bind *kb;
	const struct sva_desc *d;
	bool block;
	uint64_t off;
	uint32_t crc;
	bool differ;
	struct fault f;
};

/* One window of @n bytes at run->off; returns false when the run ends. */
static bool window(struct run *r, uint64_t n)
{
	const struct sva_desc *d = r->d;
	uint64_t src = d->src + r->off, dst = d->dst + r->off, got, put;
	uint8_t *w0 = r->kb->win[0], *w1 = r->kb->win[1];
	int fd = r->kb->fd;
	struct fault f2 = { 0 };

	r->f.status = SVA_STATUS_SUCCESS;
	switch (d->opcode) {
	case SVA_OP_COPY:
		got = win_read(fd, src, n, w0, r->block, &r->f);
		put = win_write(fd, dst, got, w0, r->block, &f2);
		if (put < got)
			r->f = f2;
		r->off += put;
		return put == n;
	case SVA_OP_FILL:
		for (uint64_t i = 0; i < n; i++)
			w0[i] = (uint8_t)(d->pattern >> (8 * ((r->off + i) % 8)));
		put = win_write(fd, dst, n, w0, r->block, &r->f);
		r->off += put;
		return put == n;
	case SVA_OP_CRC32C:
		got = win_read(fd, src, n, w0, r->block, &r->f);
		r->crc = sva_crc32c(r->crc, w0, got);
		r->off += got;
		return got == n;
	case SVA_OP_COMPARE:
		got = win_read(fd, src, n, w0, r->block, &r->f);
		put = win_read(fd, dst, n, w1, r->block, &f2);
		if (put < got) {
			got = put;
			r->f = f2;
		}
		for (uint64_t i = 0; i < got; i++) {
			if (w0[i] != w1[i]) {
				r->off += i;
				r->differ = true;
				return false;
			}
		}
		r->off += got;
		return got == n;
	default:
		return false;
	}
}

void kmod_exec(struct sva_bind *bind, const struct sva_desc *d,
	       struct sva_completion *comp)
{
	struct run r = {
		.kb = kmod_bind_of(bind), .d = d,
		.block = (d->flags & SVA_DESC_BLOCK_ON_FAULT) &&
			 !(bind->dev->opts.flags & SVA_DEV_NO_PRI),
		.crc = (uint32_t)d->pattern,
	};

	if (sva__dev_quarantined(bind->dev)) {
		comp->status = SVA_STATUS_QUARANTINED;
		return;
	}
	while (d->opcode != SVA_OP_NOP && r.off < d->len &&
	       window(&r, MIN(d->len - r.off, KMOD_WINDOW)))
		;
	comp->bytes_done = r.off;
	if (!r.differ && r.off < d->len && d->opcode != SVA_OP_NOP) {
		comp->status = r.f.status;
		comp->fault_addr = r.f.addr;
		comp->fault_access = r.f.access;
		if (r.f.status == SVA_STATUS_FAULT_INVALID ||
		    r.f.status == SVA_STATUS_FAULT_FAILURE)
			sva__fault_failed(bind);
	}
	if (d->opcode == SVA_OP_CRC32C)
		comp->result = r.crc;
	if (d->opcode == SVA_OP_COMPARE)
		comp->result = r.differ;
}
