// SPDX-License-Identifier: GPL-2.0
/*
 * Bounds on what unprivileged users can make the module allocate. /dev/sva
 * is world-usable, and a context (its event queue, page table, notifier)
 * costs some 13 KiB: contexts are counted per user (-EMFILE past
 * max_contexts_per_user) and mirror ranges per context (-ENOSPC past
 * max_mirrors_per_context). Both are also charged to the caller's memory
 * cgroup (GFP_KERNEL_ACCOUNT).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/hashtable.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/slab.h>

#include "shim.h"

static unsigned int max_contexts_per_user = 256;
module_param(max_contexts_per_user, uint, 0644);
MODULE_PARM_DESC(max_contexts_per_user,
		 "open contexts (and so PASIDs) a user may hold (default 256)");

static unsigned int max_mirrors_per_context = 16384;
module_param(max_mirrors_per_context, uint, 0644);
MODULE_PARM_DESC(max_mirrors_per_context,
		 "mirror ranges one context may register (default 16384)");

static unsigned int max_devmem_mb_per_user = 1024;
module_param(max_devmem_mb_per_user, uint, 0644);
MODULE_PARM_DESC(max_devmem_mb_per_user,
		 "device memory all of a user's contexts may have, MiB (default 1024)");

static unsigned int max_ring_entries = SVA_SHIM_RING_MAX_ENTRIES;
module_param(max_ring_entries, uint, 0644);
MODULE_PARM_DESC(max_ring_entries,
		 "entries of each descriptor queue a context may set up (default 4096)");

static unsigned int max_ring_kb_per_user = 16384;
module_param(max_ring_kb_per_user, uint, 0644);
MODULE_PARM_DESC(max_ring_kb_per_user,
		 "descriptor ring memory all of a user's contexts may have, KiB (default 16384)");

/* A user holding contexts; freed with its last one. */
struct sva_user {
	struct hlist_node node;		/* in sva_users, sva_users_lock */
	kuid_t uid;
	unsigned int contexts;		/* sva_users_lock */
	unsigned long devmem_pages;	/* sva_users_lock */
	unsigned long ring_pages;	/* sva_users_lock */
};

static DEFINE_HASHTABLE(sva_users, 6);
static DEFINE_MUTEX(sva_users_lock);

static struct sva_user *user_find(kuid_t uid)
{
	struct sva_user *u;

	hash_for_each_possible(sva_users, u, node, __kuid_val(uid))
		if (uid_eq(u->uid, uid))
			return u;
	return NULL;
}

/* Count a new context against the calling user: its sva_user or -EMFILE. */
struct sva_user *sva_user_get(void)
{
	kuid_t uid = current_uid();
	struct sva_user *u;

	mutex_lock(&sva_users_lock);
	u = user_find(uid);
	if (!u) {
		u = kzalloc(sizeof(*u), GFP_KERNEL_ACCOUNT);
		if (!u) {
			u = ERR_PTR(-ENOMEM);
			goto unlock;
		}
		u->uid = uid;
		hash_add(sva_users, &u->node, __kuid_val(uid));
	}
	if (u->contexts >= READ_ONCE(max_contexts_per_user)) {
		if (!u->contexts) {
			hash_del(&u->node);
			kfree(u);
		}
		u = ERR_PTR(-EMFILE);
		goto unlock;
	}
	u->contexts++;
unlock:
	mutex_unlock(&sva_users_lock);
	return u;
}

void sva_user_put(struct sva_user *u)
{
	mutex_lock(&sva_users_lock);
	if (!--u->contexts) {
		hash_del(&u->node);
		kfree(u);
	}
	mutex_unlock(&sva_users_lock);
}

/* May @ctx register one more mirror range? Caller holds ctx->lock. */
bool sva_mirror_room(struct sva_ctx *ctx)
{
	lockdep_assert_held(&ctx->lock);
	return ctx->nr_ranges < READ_ONCE(max_mirrors_per_context);
}

/* Add @pages to @user's count at @count unless that passes @max. */
static int user_charge(unsigned long *count, unsigned long pages,
		       unsigned long max)
{
	int ret = 0;

	mutex_lock(&sva_users_lock);
	if (*count + pages > max)
		ret = -ENOSPC;
	else
		*count += pages;
	mutex_unlock(&sva_users_lock);
	return ret;
}

static void user_uncharge(unsigned long *count, unsigned long pages)
{
	mutex_lock(&sva_users_lock);
	*count -= pages;
	mutex_unlock(&sva_users_lock);
}

/*
 * Count @pages of device memory against @user: its struct pages (memmap)
 * are the kernel's, not charged to any cgroup, so the total is bounded.
 */
int sva_user_devmem_charge(struct sva_user *user, unsigned long pages)
{
	return user_charge(&user->devmem_pages, pages,
			   (unsigned long)READ_ONCE(max_devmem_mb_per_user) <<
			   (20 - PAGE_SHIFT));
}

void sva_user_devmem_uncharge(struct sva_user *user, unsigned long pages)
{
	user_uncharge(&user->devmem_pages, pages);
}

unsigned int sva_ring_max_entries(void)
{
	return min(READ_ONCE(max_ring_entries), SVA_SHIM_RING_MAX_ENTRIES);
}

/*
 * Count @pages of descriptor rings against @user. They are charged to the
 * caller's memory cgroup too; this bounds what a user without one holds.
 */
int sva_user_ring_charge(struct sva_user *user, unsigned long pages)
{
	return user_charge(&user->ring_pages, pages,
			   (unsigned long)READ_ONCE(max_ring_kb_per_user) >>
			   (PAGE_SHIFT - 10));
}

void sva_user_ring_uncharge(struct sva_user *user, unsigned long pages)
{
	user_uncharge(&user->ring_pages, pages);
}
