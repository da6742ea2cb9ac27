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
 * One device access through the kernel: 0 and its status in @a, or an
 * errno (an invalid access).
 */
static int shim_io(int fd, bool write, uint64_t addr, uint64_t len,
		   uint8_t *buf, uint32_t flags, struct sva_shim_access *a)
{
	*a = (struct sva_shim_access){
		.addr = addr, .len = len, .buf = (uintptr_t)buf,
		.flags = flags,
	};
	return ioctl(fd, write ? SVA_SHIM_IOC_WRITE : SVA_SHIM_IOC_READ, a) ?
	       -errno : 0;
}

/*
 * Fault-driven migration: the device faulted at @addr; if the page's
 * preferred location is the device (and the device doesn't access it in
 * place), its granule moves to device memory first. True if the page is
 * there now.
 */
static bool fault_migrate(struct sva_bind *bind, uint64_t addr)
{
	struct sva_migrate_result r = { .sz = sizeof(r) };
	uint64_t v[SVA_ATTR_MAX], size;

	sva__range_attrs_at(&bind->attrs, addr, v);
	if (v[SVA_ATTR_PREFERRED_LOC] != SVA_LOC_DEVICE ||
	    v[SVA_ATTR_ACCESSED_BY] || v[SVA_ATTR_NO_ACCESS])
		return false;
	size = SVA_PAGE_SIZE << v[SVA_ATTR_GRANULARITY];
	if (kmod_migrate(bind, addr & ~(size - 1), size, SVA_LOC_DEVICE, &r))
		return false;
	return r.moved || r.already;
}

/*
 * Move [addr, addr + len) between the mirror and @buf. Returns the bytes
 * moved before a fault, which goes to @f (attributed to @access).
 *
 * With range attributes set, a blocking access first goes without
 * faulting: where it would fault, fault_migrate() may move the page to
 * device memory (then it is retried, locally), else the page request is
 * made for that page alone and the access goes on.
 */
static uint64_t bytes_io(struct sva_bind *bind, bool write, uint64_t addr,
			 uint64_t len, uint8_t *buf, bool block,
			 unsigned int access, struct fault *f)
{
	int fd = kmod_bind_of(bind)->fd;
	bool driven = block && !sva__range_attrs_empty(&bind->attrs);
	uint32_t flags = block && !driven ? 0 : SVA_SHIM_ACCESS_NO_FAULT;
	struct sva_shim_access a;
	unsigned int tries = 0;
	uint64_t done = 0, n;

	if (!len)
		return 0;
	while (done < len) {
		if (shim_io(fd, write, addr + done, len - done, buf + done,
			    flags, &a)) {
			/* Refused outright (past TASK_SIZE): invalid. */
			*f = (struct fault){ SVA_STATUS_FAULT_INVALID,
					     addr + done, access };
			return done;
		}
		done += a.bytes_done;
		if (a.status == SVA_SHIM_STATUS_OK)
			return len;
		if (!driven || a.status != SVA_SHIM_STATUS_PAGE_FAULT)
			break;
		/* Moved (a racing CPU access may take it back: retry). */
		if (tries++ < 8 && fault_migrate(bind, a.fault_addr))
			continue;
		/* The page request, for that page. */
		n = MIN((a.fault_addr & ~(uint64_t)(SVA_PAGE_SIZE - 1)) +
			SVA_PAGE_SIZE, addr + len) - (addr + done);
		if (shim_io(fd, write, addr + done, n, buf + done, 0, &a)) {
			*f = (struct fault){ SVA_STATUS_FAULT_INVALID,
					     addr + done, access };
			return done;
		}
		done += a.bytes_done;
		if (a.status != SVA_SHIM_STATUS_OK)
			break;
		tries = 0;
	}
	*f = (struct fault){ status_of(a.status), a.fault_addr, access };
	return done;
}

struct run {
	struct sva_bind *bind;
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
	struct sva_bind *b = r->bind;
	struct fault f2 = { 0 };

	r->f.status = SVA_STATUS_SUCCESS;
	switch (d->opcode) {
	case SVA_OP_COPY:
		got = bytes_io(b, false, src, n, w0, r->block,
			       SVA_ACCESS_READ, &r->f);
		put = bytes_io(b, true, dst, got, w0, r->block,
			       SVA_ACCESS_WRITE, &f2);
		if (put < got)
			r->f = f2;
		r->off += put;
		return put == n;
	case SVA_OP_FILL:
		for (uint64_t i = 0; i < n; i++)
			w0[i] = (uint8_t)(d->pattern >> (8 * ((r->off + i) % 8)));
		put = bytes_io(b, true, dst, n, w0, r->block,
			       SVA_ACCESS_WRITE, &r->f);
		r->off += put;
		return put == n;
	case SVA_OP_CRC32C:
		got = bytes_io(b, false, src, n, w0, r->block,
			       SVA_ACCESS_READ, &r->f);
		r->crc = sva_crc32c(r->crc, w0, got);
		r->off += got;
		return got == n;
	case SVA_OP_COMPARE:
		got = bytes_io(b, false, src, n, w0, r->block,
			       SVA_ACCESS_READ, &r->f);
		put = bytes_io(b, false, dst, n, w1, r->block,
			       SVA_ACCESS_READ, &f2);
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

/*
 * Range attributes the device obeys itself, as its IOMMU's permissions
 * would: NO_ACCESS stops any access, DEVICE_READ_ONLY a write, with
 * FAULT_INVALID once the bytes before are done (no page request: there
 * is nothing to resolve). Returns the offset the run stops at; @f is the
 * fault to report there.
 */
static uint64_t attrs_limit(struct sva_bind *bind, const struct sva_desc *d,
			    struct fault *f)
{
	struct sva_range_attrs *ra = &bind->attrs;
	bool reads = d->opcode == SVA_OP_COPY || d->opcode == SVA_OP_CRC32C ||
		     d->opcode == SVA_OP_COMPARE;
	bool writes = d->opcode == SVA_OP_COPY || d->opcode == SVA_OP_FILL;
	uint64_t off = d->len, o;

	if (reads) {
		o = sva__range_attrs_first(ra, d->src, d->src + d->len,
					   SVA_ATTR_NO_ACCESS) - d->src;
		if (o < off) {
			off = o;
			*f = (struct fault){ SVA_STATUS_FAULT_INVALID,
					     d->src + o, SVA_ACCESS_READ };
		}
	}
	if (d->dst) {
		o = sva__range_attrs_first(ra, d->dst, d->dst + d->len,
					   SVA_ATTR_NO_ACCESS) - d->dst;
		if (writes)
			o = MIN(o, sva__range_attrs_first(ra, d->dst,
					d->dst + d->len,
					SVA_ATTR_DEVICE_READ_ONLY) - d->dst);
		if (o < off) {
			off = o;
			*f = (struct fault){ SVA_STATUS_FAULT_INVALID,
					     d->dst + o, writes ?
					     SVA_ACCESS_WRITE : SVA_ACCESS_READ };
		}
	}
	return off;
}

void kmod_exec(struct sva_bind *bind, const struct sva_desc *d,
	       struct sva_completion *comp)
{
	struct fault at_limit = { 0 };
	uint64_t limit = d->len;
	struct run r = {
		.bind = bind, .kb = kmod_bind_of(bind), .d = d,
		.block = (d->flags & SVA_DESC_BLOCK_ON_FAULT) &&
			 !(bind->dev->opts.flags & SVA_DEV_NO_PRI),
		.crc = (uint32_t)d->pattern,
	};

	if (sva__dev_quarantined(bind->dev)) {
		comp->status = SVA_STATUS_QUARANTINED;
		return;
	}
	/* The kernel's engine, when it is idle and no policy is needed. */
	if (kmod_ring_exec(bind, d, comp))
		return;
	if (d->opcode != SVA_OP_NOP && !sva__range_attrs_empty(&bind->attrs))
		limit = attrs_limit(bind, d, &at_limit);
	while (d->opcode != SVA_OP_NOP && r.off < limit &&
	       window(&r, MIN(limit - r.off, KMOD_WINDOW)))
		;
	/* Every byte before the attribute's limit done: its fault. */
	if (!r.differ && r.off == limit && limit < d->len)
		r.f = at_limit;
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
