// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Device memory and placement: sva_migrate(), the range attributes and
 * SVA_OP_PREFETCH. The core checks arguments and keeps the attributes; a
 * backend with SVA_CAP_MIGRATE moves the pages (ops->migrate).
 */
#include <string.h>

#include "internal.h"

bool sva__loc_valid(uint64_t loc, bool none_ok)
{
	if (loc == SVA_LOC_NONE)
		return none_ok;
	if (loc == SVA_LOC_DEVICE || loc == SVA_LOC_HOST)
		return true;
	/* SVA_LOC_HOST_NODE(n): n below the kernel's MAX_NUMNODES. */
	return (loc & 0xffffffffull) == SVA_LOC_HOST &&
	       SVA_LOC_NODE_OF(loc) >= 0 && SVA_LOC_NODE_OF(loc) < 1024;
}

/* -EOPNOTSUPP unless @bind's device has device memory. */
static int migrate_usable(struct sva_bind *bind, const char *what)
{
	int err = sva__bind_usable(bind);

	if (err)
		return err;
	if (!(bind->dev->caps.flags & SVA_CAP_MIGRATE))
		return sva_err(-EOPNOTSUPP, "%s: %s has no device memory (SVA_CAP_MIGRATE)",
			       what, bind->dev->name);
	return 0;
}

static int range_check(uint64_t addr, uint64_t len)
{
	if (!len || ((addr | len) & ~SVA_PAGE_MASK) || addr + len < addr ||
	    addr + len > (1ull << 57))
		return sva_err(-EINVAL, "range %#llx+%#llx not page aligned, empty or past the address space",
			       (unsigned long long)addr,
			       (unsigned long long)len);
	return 0;
}

static uint64_t result_not_moved(const struct sva_migrate_result *r)
{
	uint64_t n = 0;

	for (int i = 0; i < SVA_MIGRATE_REASON_MAX; i++)
		n += r->not_moved[i];
	return n;
}

int sva__migrate_run(struct sva_bind *bind, uint64_t addr, uint64_t len,
		     uint64_t to, struct sva_migrate_result *res, int cause)
{
	enum sva_trace_mig_dir dir = SVA_TRACE_MIG_TO_HOST;
	uint64_t t0, refused;
	int err;

	if (!sva__tracing(bind->dev))
		return bind->dev->ops->migrate(bind, addr, len, to, res);
	t0 = sva__now_ns();
	sva__trace_mig_from_dev = 0;
	err = bind->dev->ops->migrate(bind, addr, len, to, res);
	refused = err ? len >> SVA_PAGE_SHIFT : result_not_moved(res);
	/* Device to device when every page moved came from another
	 * device's memory; a mix is a run to the device. */
	if (to == SVA_LOC_DEVICE)
		dir = res->moved && sva__trace_mig_from_dev == res->moved ?
		      SVA_TRACE_MIG_DEV_TO_DEV : SVA_TRACE_MIG_TO_DEV;
	sva__trace_migrate(bind, t0, 0, dir, cause,
			   to == SVA_LOC_DEVICE ? -1 : SVA_LOC_NODE_OF(to),
			   addr, err ? 0 : res->moved, refused);
	return err;
}

int sva_migrate(struct sva_bind *bind, uint64_t addr, uint64_t len,
		const struct sva_migrate_opts *opts,
		struct sva_migrate_result *res)
{
	SVA_NO_CANCEL;
	struct sva_migrate_result r = { .sz = sizeof(r) };
	struct sva_migrate_opts o;
	uint64_t not_moved;
	int err;

	err = migrate_usable(bind, "sva_migrate");
	if (err)
		return err;
	if (!opts)
		return sva_err(-EINVAL, "opts is NULL (it names the target)");
	err = sva__opts_copy(&o, sizeof(o), opts, "sva_migrate_opts");
	if (err)
		return err;
	if (o.flags)
		return sva_err(-EINVAL, "unknown flags %#x", o.flags);
	if (!sva__loc_valid(o.to, false))
		return sva_err(-EINVAL, "target %#llx is no SVA_LOC_ location",
			       (unsigned long long)o.to);
	if (res && res->sz < sizeof(size_t))
		return sva_err(-EINVAL, "res->sz %zu too small", res->sz);
	err = range_check(addr, len);
	if (err)
		return err;
	err = sva__migrate_run(bind, addr, len, o.to, &r,
			       SVA_TRACE_MIG_EXPLICIT);
	if (err)
		return err;
	not_moved = result_not_moved(&r);
	sva__count(bind, SVA_C_MIGRATE_FAILURES, not_moved);
	if (res)
		sva__out_copy(res, res->sz, &r, sizeof(r));
	return (int)MIN(not_moved, (uint64_t)INT32_MAX);
}

int sva_make_exclusive(struct sva_bind *bind, uint64_t addr, uint64_t len,
		       unsigned int flags, struct sva_migrate_result *res)
{
	SVA_NO_CANCEL;
	struct sva_migrate_result r = { .sz = sizeof(r) };
	uint64_t refused;
	int err;

	err = sva__bind_usable(bind);
	if (err)
		return err;
	if (!(bind->dev->caps.flags & SVA_CAP_EXCLUSIVE) ||
	    !bind->dev->ops->make_exclusive)
		return sva_err(-EOPNOTSUPP, "sva_make_exclusive: %s can't hold host pages exclusively (SVA_CAP_EXCLUSIVE)",
			       bind->dev->name);
	if (flags)
		return sva_err(-EINVAL, "unknown flags %#x", flags);
	if (res && res->sz < sizeof(size_t))
		return sva_err(-EINVAL, "res->sz %zu too small", res->sz);
	err = range_check(addr, len);
	if (err)
		return err;
	err = bind->dev->ops->make_exclusive(bind, addr, len, &r);
	if (err)
		return err;
	refused = result_not_moved(&r);
	if (res)
		sva__out_copy(res, res->sz, &r, sizeof(r));
	return (int)MIN(refused, (uint64_t)INT32_MAX);
}

void sva__prefetch_exec(struct sva_bind *bind, const struct sva_desc *d,
			struct sva_completion *comp)
{
	struct sva_migrate_result r = { .sz = sizeof(r) };
	uint64_t not_moved;
	int err;

	err = sva__migrate_run(bind, d->src, d->len, d->pattern, &r,
			       SVA_TRACE_MIG_PREFETCH);
	not_moved = err ? d->len >> SVA_PAGE_SHIFT : result_not_moved(&r);
	sva__count(bind, SVA_C_MIGRATE_FAILURES, not_moved);
	comp->result = r.moved + r.already;
	comp->bytes_done = d->len;
	/* Pages left behind are a failure of the prefetch, not a fault. */
	if (not_moved) {
		comp->status = SVA_STATUS_FAULT_FAILURE;
		comp->bytes_done = 0;
		comp->fault_addr = d->src;
	}
}

static int attr_check(const struct sva_range_attr *a, bool set)
{
	if (a->type == 0 || a->type >= SVA_ATTR_MAX || a->rsvd)
		return sva_err(-EINVAL, "unknown attribute type %u (or rsvd set)",
			       a->type);
	if (!set)
		return 0;
	switch (a->type) {
	case SVA_ATTR_PREFERRED_LOC:
		if (!sva__loc_valid(a->value, true))
			return sva_err(-EINVAL, "preferred location %#llx is no SVA_LOC_ location",
				       (unsigned long long)a->value);
		return 0;
	case SVA_ATTR_GRANULARITY:
		if (a->value > 9)
			return sva_err(-EINVAL, "granularity %llu over 9 (2 MiB)",
				       (unsigned long long)a->value);
		return 0;
	default:
		if (a->value > 1)
			return sva_err(-EINVAL, "attribute %u is a flag: 0 or 1",
				       a->type);
		return 0;
	}
}

static int attr_args(struct sva_bind *bind, uint64_t addr, uint64_t len,
		     const struct sva_range_attr *attrs, unsigned int n,
		     bool set, const char *what)
{
	int err = migrate_usable(bind, what);

	if (err)
		return err;
	if (!attrs || !n || n > 64)
		return sva_err(-EINVAL, "%s: 1..64 attributes", what);
	err = range_check(addr, len);
	for (unsigned int i = 0; !err && i < n; i++)
		err = attr_check(&attrs[i], set);
	/* A munmap() that returned has forgotten its range's attributes. */
	if (!err && bind->dev->ops->sync)
		bind->dev->ops->sync(bind);
	return err;
}

int sva_range_set_attr(struct sva_bind *bind, uint64_t addr, uint64_t len,
		       const struct sva_range_attr *attrs, unsigned int n)
{
	SVA_NO_CANCEL;
	uint64_t v[SVA_ATTR_MAX] = { 0 };
	uint32_t mask = 0;
	int err;

	err = attr_args(bind, addr, len, attrs, n, true, "sva_range_set_attr");
	if (err)
		return err;
	/* The last of an attribute given twice wins, as in KFD. */
	for (unsigned int i = 0; i < n; i++) {
		v[attrs[i].type] = attrs[i].value;
		mask |= 1u << attrs[i].type;
	}
	if (bind->dev->ops->attrs_track)
		bind->dev->ops->attrs_track(bind, addr, len);
	return sva__range_attrs_set(&bind->attrs, addr, addr + len, mask, v);
}

int sva_range_get_attr(struct sva_bind *bind, uint64_t addr, uint64_t len,
		       struct sva_range_attr *attrs, unsigned int n)
{
	SVA_NO_CANCEL;
	int err;

	err = attr_args(bind, addr, len, attrs, n, false, "sva_range_get_attr");
	if (err)
		return err;
	for (unsigned int i = 0; i < n; i++)
		attrs[i].value = sva__range_attrs_get(&bind->attrs, addr,
						      addr + len,
						      attrs[i].type);
	return 0;
}
