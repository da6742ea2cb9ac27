// SPDX-License-Identifier: GPL-2.0
/*
 * PASIDs: one per bound mm, as the IOMMU core gives one per mm
 * (mm->iommu_mm->pasid): every context of a process bound to this device
 * gets the same PASID, freed when its last binding goes. Keyed by the mm,
 * which each context keeps from being freed (mmgrab()).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/idr.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/slab.h>

#include "shim.h"

struct sva_pasid {
	struct list_head node;		/* on sva_pasids, sva_pasids_lock */
	struct mm_struct *mm;
	u32 pasid;
	unsigned int binds;		/* sva_pasids_lock */
};

static DEFINE_IDA(sva_pasid_ida);
static LIST_HEAD(sva_pasids);
static DEFINE_MUTEX(sva_pasids_lock);

static struct sva_pasid *pasid_find(struct mm_struct *mm)
{
	struct sva_pasid *p;

	list_for_each_entry(p, &sva_pasids, node)
		if (p->mm == mm)
			return p;
	return NULL;
}

/* The PASID of @mm, allocated on its first binding; or -errno. */
int sva_pasid_get(struct mm_struct *mm)
{
	struct sva_pasid *p;
	int ret;

	mutex_lock(&sva_pasids_lock);
	p = pasid_find(mm);
	if (p) {
		p->binds++;
		ret = p->pasid;
		goto unlock;
	}
	ret = -ENOMEM;
	p = kzalloc(sizeof(*p), GFP_KERNEL_ACCOUNT);
	if (!p)
		goto unlock;
	ret = ida_alloc_range(&sva_pasid_ida, 1, (1u << SVA_PASID_BITS) - 1,
			      GFP_KERNEL);
	if (ret < 0) {
		kfree(p);
		goto unlock;
	}
	p->mm = mm;
	p->pasid = ret;
	p->binds = 1;
	list_add(&p->node, &sva_pasids);
unlock:
	mutex_unlock(&sva_pasids_lock);
	return ret;
}

void sva_pasid_put(struct mm_struct *mm)
{
	struct sva_pasid *p;

	mutex_lock(&sva_pasids_lock);
	p = pasid_find(mm);
	if (!WARN_ON_ONCE(!p) && !--p->binds) {
		list_del(&p->node);
		ida_free(&sva_pasid_ida, p->pasid);
		kfree(p);
	}
	mutex_unlock(&sva_pasids_lock);
}

void sva_pasids_fini(void)
{
	ida_destroy(&sva_pasid_ida);
}
