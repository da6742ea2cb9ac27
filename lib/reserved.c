// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Reserved windows: ranges of a device's address space no DMA reaches (an
 * IOMMU group's reserved_regions: the x86 MSI window 0xfee00000-0xfeefffff,
 * RMRRs, ...). With SVA the device's addresses are the process's, so a
 * buffer the process has there is one the device can't use: an access is
 * answered INVALID, and a mirror over one is refused, as VFIO_IOMMU_MAP_DMA
 * refuses reserved IOVAs. The core owns both checks, so every backend
 * behaves alike; a backend only reports its device's windows
 * (ops->reserved_regions), once, at open.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *region_type_name(uint32_t type)
{
	switch (type) {
	case SVA_REGION_RESERVED:
		return "reserved";
	case SVA_REGION_DIRECT:
		return "direct-mapped";
	case SVA_REGION_MSI:
		return "MSI";
	default:
		return NULL;
	}
}

/*
 * Check @n windows (in any order): known type, start <= end, rsvd 0, no
 * two sharing a byte. @err is what a bad list gets: -EINVAL from a caller,
 * -EIO from a backend (a bug). n <= SVA_REGIONS_MAX keeps the pairwise
 * check cheap.
 */
static int regions_check(const struct sva_region *r, unsigned int n, int err,
			 const char *who)
{
	for (unsigned int i = 0; i < n; i++) {
		if (!region_type_name(r[i].type) || r[i].rsvd)
			return sva_err(err, "%s: window %u: unknown type %u or rsvd set",
				       who, i, r[i].type);
		if (r[i].start > r[i].end)
			return sva_err(err, "%s: window %u: start %#llx after end %#llx (end is inclusive)",
				       who, i, (unsigned long long)r[i].start,
				       (unsigned long long)r[i].end);
		for (unsigned int j = 0; j < i; j++)
			if (r[j].start <= r[i].end && r[i].start <= r[j].end)
				return sva_err(err, "%s: windows [%#llx-%#llx] and [%#llx-%#llx] overlap",
					       who,
					       (unsigned long long)r[j].start,
					       (unsigned long long)r[j].end,
					       (unsigned long long)r[i].start,
					       (unsigned long long)r[i].end);
	}
	return 0;
}

int sva__resv_opts_check(const struct sva_dev_opts *o)
{
	if (!o->reserved && o->nr_reserved)
		return sva_err(-EINVAL, "sva_dev_opts: reserved is NULL with nr_reserved %u",
			       o->nr_reserved);
	if (o->nr_reserved > SVA_REGIONS_MAX)
		return sva_err(-EINVAL, "sva_dev_opts: nr_reserved %u > %u",
			       o->nr_reserved, SVA_REGIONS_MAX);
	return regions_check(o->reserved, o->nr_reserved, -EINVAL,
			     "sva_dev_opts");
}

static int region_cmp(const void *a, const void *b)
{
	const struct sva_region *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int sva__resv_load(struct sva_dev *dev)
{
	int (*get)(struct sva_dev *, struct sva_region *, unsigned int) =
		dev->ops->reserved_regions;
	struct sva_region *r;
	int n, got, err;

	if (!get)
		return dev->opts.reserved ?
		       sva_err(-EOPNOTSUPP, "%s has no reserved windows to model (sva_dev_opts.reserved is the software device's)",
			       dev->name) : 0;
	n = get(dev, NULL, 0);
	if (n <= 0)
		return n;
	if (n > SVA_REGIONS_MAX)
		return sva_err(-EIO, "%s reports %d reserved windows (> %u)",
			       dev->name, n, SVA_REGIONS_MAX);
	r = sva__zalloc((size_t)n * sizeof(*r));
	if (!r)
		return -ENOMEM;
	got = get(dev, r, (unsigned int)n);
	if (got != n)
		err = got < 0 ? got :
		      sva_err(-EIO, "%s: reserved windows changed while read",
			      dev->name);
	else
		err = regions_check(r, (unsigned int)n, -EIO, dev->name);
	if (err) {
		free(r);
		return err;
	}
	/* Sorted: sva_dev_reserved_regions() reports them so, and the
	 * checks below find the first window at an address by bisection. */
	qsort(r, (size_t)n, sizeof(*r), region_cmp);
	dev->resv = r;
	dev->nr_resv = (unsigned int)n;
	return 0;
}

void sva__resv_free(struct sva_dev *dev)
{
	free(dev->resv);
	dev->resv = NULL;
	dev->nr_resv = 0;
}

/* The first window of @dev that [addr, addr + len) overlaps, or NULL. */
static const struct sva_region *resv_first(const struct sva_dev *dev,
					   uint64_t addr, uint64_t len)
{
	unsigned int lo = 0, hi = dev->nr_resv;

	/* The first window ending at or after addr... */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (dev->resv[mid].end < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* ...if it starts before the range's last byte. */
	if (lo < dev->nr_resv && dev->resv[lo].start <= addr + (len - 1))
		return &dev->resv[lo];
	return NULL;
}

int sva__resv_check_range(const struct sva_dev *dev, uint64_t addr,
			  uint64_t len, const char *what)
{
	const struct sva_region *r = resv_first(dev, addr, len);

	if (!r)
		return 0;
	pr_warn("%s: range %#llx+%#llx: [%#llx-%#llx] is %s's %s window: no DMA reaches it\n",
		what, (unsigned long long)addr, (unsigned long long)len,
		(unsigned long long)r->start, (unsigned long long)r->end,
		dev->name, region_type_name(r->type));
	return -EINVAL;
}

/* Where a descriptor first touches a window. */
struct resv_hit {
	bool found;
	uint64_t off;		/* bytes before it */
	uint64_t addr;		/* the first byte inside the window */
	unsigned int access;	/* enum sva_fault_access */
};

/* One side of a descriptor: [base, base + len) accessed with @access. */
static void resv_side(const struct sva_dev *dev, uint64_t base,
		      uint64_t len, unsigned int access, struct resv_hit *hit)
{
	const struct sva_region *r = resv_first(dev, base, len);
	uint64_t off;

	if (!r)
		return;
	off = r->start > base ? r->start - base : 0;
	/* On a tie the side looked at first wins: the source, since the
	 * device reads a byte before it writes it. */
	if (hit->found && off >= hit->off)
		return;
	hit->found = true;
	hit->off = off;
	hit->addr = base + off;
	hit->access = access;
}

void sva__exec(struct sva_bind *bind, const struct sva_desc *d,
	       struct sva_completion *comp)
{
	const struct sva_dev *dev = bind->dev;
	uint32_t op = d->opcode;
	struct resv_hit hit = { .found = false };
	struct sva_desc cut;

	/* The sides each opcode accesses, as desc_check() validates them. */
	if (dev->nr_resv && op != SVA_OP_NOP) {
		if (op == SVA_OP_COPY || op == SVA_OP_COMPARE ||
		    op == SVA_OP_CRC32C)
			resv_side(dev, d->src, d->len, SVA_ACCESS_READ, &hit);
		if (op == SVA_OP_COPY || op == SVA_OP_FILL)
			resv_side(dev, d->dst, d->len, SVA_ACCESS_WRITE, &hit);
		if (op == SVA_OP_COMPARE)
			resv_side(dev, d->dst, d->len, SVA_ACCESS_READ, &hit);
	}
	if (!hit.found) {
		dev->ops->exec(bind, d, comp);
		return;
	}
	if (hit.off) {
		/* The bytes before the window, as any descriptor of that
		 * length: its faults, its partial completions. */
		cut = *d;
		cut.len = hit.off;
		dev->ops->exec(bind, &cut, comp);
		/* Stopped before the window (a fault, a difference, a
		 * quarantine): that is how the descriptor ends. */
		if (comp->status != SVA_STATUS_SUCCESS ||
		    comp->bytes_done < hit.off)
			return;
	} else {
		if (sva__dev_quarantined(dev)) {
			comp->status = SVA_STATUS_QUARANTINED;
			return;
		}
		/* Nothing done: the running CRC is still the seed. */
		if (op == SVA_OP_CRC32C)
			comp->result = (uint32_t)d->pattern;
	}
	/*
	 * No page request: no fault service can make a reserved window
	 * reachable, so block-on-fault doesn't wait, nothing counts
	 * towards a fault storm, and a resumed descriptor fails the same.
	 */
	comp->status = SVA_STATUS_FAULT_INVALID;
	comp->fault_addr = hit.addr;
	comp->fault_access = hit.access;
	comp->bytes_done = hit.off;
}

int sva_dev_reserved_regions(const struct sva_dev *dev,
			     struct sva_region *out, unsigned int n)
{
	SVA_NO_CANCEL;
	int err = sva__dev_usable(dev);

	if (err)
		return err;
	if (!out && n)
		return sva_err(-EINVAL, "out is NULL with n %u", n);
	if (n && dev->nr_resv)
		memcpy(out, dev->resv, MIN(n, dev->nr_resv) * sizeof(*out));
	return (int)dev->nr_resv;
}
