// SPDX-License-Identifier: GPL-2.0
/*
 * sva_shim: /dev/sva, the kernel side of libsva's "kmod" backend.
 *
 * Each open file is a software SVA device context bound to the opening
 * process's mm (mmgrab() and an MMU interval notifier over the whole mm).
 * CONTEXT, on any open file of the device, whoever opened it, makes a new
 * context for the caller's mm: a process handed the device's fd (over a
 * socket, into a sandbox without /dev) can bind itself. BIND gives a
 * context its mm's PASID (pasid.c) and, where the module was pointed at a
 * PCI device (sva_pci=), tries a hardware bind with
 * iommu_sva_bind_device(): the kernel may refuse (x86 6.12 always does,
 * -EOPNOTSUPP), which is reported, never fatal. Every other ioctl from a
 * process other than the context's fails with -EPERM.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/poll.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/sysfs.h>
#include <linux/uaccess.h>

#include "shim.h"

/*
 * Contexts and mirror ranges alive, read-only in
 * /sys/module/sva_shim/parameters/live_objects: tests check it drops back
 * to 0 once every file is closed, whatever way its process went.
 */
static atomic_t sva_live = ATOMIC_INIT(0);

void sva_live_get(void)
{
	atomic_inc(&sva_live);
}

void sva_live_put(void)
{
	atomic_dec(&sva_live);
}

static int sva_live_show(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&sva_live));
}

static const struct kernel_param_ops sva_live_ops = {
	.get = sva_live_show,
};
module_param_cb(live_objects, &sva_live_ops, NULL, 0444);
MODULE_PARM_DESC(live_objects, "contexts and mirror ranges alive");

static char *sva_pci;
module_param(sva_pci, charp, 0444);
MODULE_PARM_DESC(sva_pci,
		 "PCI device (DDDD:BB:DD.F) to try hardware SVA binds on");

static const struct file_operations sva_fops;
static void sva_unbind_locked(struct sva_ctx *ctx);

/* A new context bound to the caller's mm, counted against its user. */
static struct sva_ctx *sva_ctx_create(void)
{
	struct sva_user *user;
	struct sva_ctx *ctx;
	int ret;

	if (!current->mm)
		return ERR_PTR(-EINVAL);
	ret = sva_inject_alloc();
	if (ret)
		return ERR_PTR(ret);
	user = sva_user_get();
	if (IS_ERR(user))
		return ERR_CAST(user);
	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL_ACCOUNT);
	if (!ctx) {
		sva_user_put(user);
		return ERR_PTR(-ENOMEM);
	}
	ctx->user = user;
	mutex_init(&ctx->lock);
	mutex_init(&ctx->bind_lock);
	mutex_init(&ctx->excl_lock);
	sva_events_init(ctx);
	ctx->hw_status = -ENODEV;
	ctx->mm = current->mm;
	mmgrab(ctx->mm);
	ret = sva_mirror_init(ctx);
	if (ret) {
		mmdrop(ctx->mm);
		kfree(ctx);
		sva_user_put(user);
		return ERR_PTR(ret);
	}
	sva_live_get();
	return ctx;
}

/* Last reference gone: no ioctl can be running on the context. */
static void sva_ctx_destroy(struct sva_ctx *ctx)
{
	/* The engine first: it reads the page table and device memory. */
	sva_engine_fini(ctx);
	/* Pages left in device memory go back to host memory first. */
	sva_devmem_fini(ctx);
	mutex_lock(&ctx->bind_lock);
	if (ctx->pasid)
		sva_unbind_locked(ctx);
	mutex_unlock(&ctx->bind_lock);
	sva_mirror_fini(ctx);
	mmdrop(ctx->mm);
	sva_user_put(ctx->user);
	kfree(ctx);
	sva_live_put();
}

static int sva_open(struct inode *inode, struct file *file)
{
	struct sva_ctx *ctx = sva_ctx_create();

	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	file->private_data = ctx;
	return 0;
}

/* SVA_SHIM_IOC_CONTEXT: a new fd, a context for the caller's mm. */
static long sva_ioctl_context(void)
{
	struct sva_ctx *ctx = sva_ctx_create();
	int fd;

	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	fd = anon_inode_getfd("[sva]", &sva_fops, ctx, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		sva_ctx_destroy(ctx);
	return fd;
}

/* A hardware SVA bond on the sva_pci device, or why there is none. */
static int sva_hw_bind(struct sva_ctx *ctx)
{
	unsigned int domain, bus, dev, fn;
	struct iommu_sva *handle;
	struct pci_dev *pdev;

	if (!sva_pci || sscanf(sva_pci, "%x:%x:%x.%x", &domain, &bus, &dev,
			       &fn) != 4)
		return -ENODEV;
	pdev = pci_get_domain_bus_and_slot(domain, bus, PCI_DEVFN(dev, fn));
	if (!pdev)
		return -ENODEV;
	handle = iommu_sva_bind_device(&pdev->dev, ctx->mm);
	pci_dev_put(pdev);
	if (IS_ERR(handle))
		return PTR_ERR(handle);
	ctx->hw = handle;
	return 0;
}

static void sva_unbind_locked(struct sva_ctx *ctx)
{
	lockdep_assert_held(&ctx->bind_lock);
	/*
	 * Unbound first: an EXCLUSIVE ioctl that sva_excl_release() waits
	 * for finishes, any later one sees this and holds nothing.
	 */
	WRITE_ONCE(ctx->pasid, 0);
	/* Its descriptors stop, the rest are cancelled. */
	sva_engine_quiesce(ctx);
	/* The device lets go of what it held for its PASID. */
	sva_excl_release(ctx);
	if (ctx->hw)
		iommu_sva_unbind_device(ctx->hw);
	ctx->hw = NULL;
	ctx->hw_status = -ENODEV;
	sva_pasid_put(ctx->mm);
}

static long sva_ioctl_bind(struct sva_ctx *ctx, void __user *uarg)
{
	struct sva_shim_bind b;
	int ret;

	if (copy_from_user(&b, uarg, sizeof(b)))
		return -EFAULT;
	if (b.flags || b.pasid || b.hw_status || b.pad)
		return -EINVAL;
	mutex_lock(&ctx->bind_lock);
	ret = -EBUSY;
	if (ctx->pasid)
		goto unlock;
	ret = -EIO;
	if (sva_should_fail(SVA_INJECT_BIND))
		goto unlock;
	ret = -ENOSPC;
	if (sva_should_fail(SVA_INJECT_PASID))
		goto unlock;
	ret = sva_pasid_get(ctx->mm);
	if (ret < 0)
		goto unlock;
	ctx->pasid = ret;
	ctx->hw_status = sva_hw_bind(ctx);
	/* Any user can bind at will: don't let them flood the log. */
	if (ctx->hw_status && ctx->hw_status != -ENODEV)
		pr_info_ratelimited("hardware SVA on %s unavailable (%d): HMM mirror only\n",
				    sva_pci, ctx->hw_status);
	b.pasid = ctx->pasid;
	b.hw_status = ctx->hw_status;
	ret = 0;
	if (copy_to_user(uarg, &b, sizeof(b))) {
		sva_unbind_locked(ctx);
		ret = -EFAULT;
	}
unlock:
	mutex_unlock(&ctx->bind_lock);
	return ret;
}

static long sva_ioctl_unbind(struct sva_ctx *ctx)
{
	long ret = -EINVAL;

	mutex_lock(&ctx->bind_lock);
	if (ctx->pasid) {
		sva_unbind_locked(ctx);
		ret = 0;
	}
	mutex_unlock(&ctx->bind_lock);
	return ret;
}

/* @size: the caller's struct, this ABI's or ABI 2's first one. */
static long sva_ioctl_stats(struct sva_ctx *ctx, void __user *uarg,
			    size_t size)
{
	struct sva_shim_stats s = { 0 };
	u64 *v = &s.translations;
	int i;

	for (i = 0; i < SVA_ST_NR; i++)
		v[i] = atomic64_read(&ctx->stats[i]);
	return copy_to_user(uarg, &s, size) ? -EFAULT : 0;
}

static long sva_ioctl_version(void __user *uarg)
{
	struct sva_shim_version v = {
		.abi = SVA_SHIM_ABI_VERSION,
		.caps = SVA_SHIM_CAP_HMM | SVA_SHIM_CAP_INJECT |
			(sva_devmem_supported() ? SVA_SHIM_CAP_MIGRATE |
			 SVA_SHIM_CAP_MIGRATE_NODE : 0) |
			(sva_excl_supported() ? SVA_SHIM_CAP_EXCLUSIVE : 0) |
			SVA_SHIM_CAP_ENGINE,
		.pasid_bits = SVA_PASID_BITS,
	};

	return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
}

static bool sva_bound(struct sva_ctx *ctx)
{
	return READ_ONCE(ctx->pasid) != 0;
}

static long sva_ioctl_bound(struct sva_ctx *ctx, unsigned int cmd,
			    void __user *uarg)
{
	switch (cmd) {
	case SVA_SHIM_IOC_READ:
		return sva_ioctl_access(ctx, uarg, false);
	case SVA_SHIM_IOC_WRITE:
		return sva_ioctl_access(ctx, uarg, true);
	case SVA_SHIM_IOC_SNAPSHOT:
		return sva_ioctl_snapshot(ctx, uarg);
	case SVA_SHIM_IOC_MIRROR:
		return sva_ioctl_mirror(ctx, uarg);
	case SVA_SHIM_IOC_UNMIRROR:
		return sva_ioctl_unmirror(ctx, uarg);
	case SVA_SHIM_IOC_DEVMEM:
		return sva_ioctl_devmem(ctx, uarg);
	case SVA_SHIM_IOC_MIGRATE:
		return sva_ioctl_migrate(ctx, uarg);
	case SVA_SHIM_IOC_EXCLUSIVE:
		return sva_ioctl_exclusive(ctx, uarg);
	case SVA_SHIM_IOC_RING_SETUP:
		return sva_ioctl_ring_setup(ctx, uarg);
	case SVA_SHIM_IOC_RING_ENTER:
		return sva_ioctl_ring_enter(ctx, (__force unsigned long)uarg);
	default:
		return sva_ioctl_mirror_seq(ctx, uarg);
	}
}

static long sva_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct sva_ctx *ctx = file->private_data;
	void __user *uarg = (void __user *)arg;

	if (cmd == SVA_SHIM_IOC_VERSION)
		return sva_ioctl_version(uarg);
	/* Any holder of the device may make a context of its own. */
	if (cmd == SVA_SHIM_IOC_CONTEXT)
		return sva_ioctl_context();
	/* The context is the binder's: another mm may not drive it. */
	if (current->mm != ctx->mm)
		return -EPERM;
	switch (cmd) {
	case SVA_SHIM_IOC_BIND:
		return sva_ioctl_bind(ctx, uarg);
	case SVA_SHIM_IOC_UNBIND:
		return sva_ioctl_unbind(ctx);
	case SVA_SHIM_IOC_STATS:
		return sva_ioctl_stats(ctx, uarg, sizeof(struct sva_shim_stats));
	case SVA_SHIM_IOC_STATS_ABI2:
		return sva_ioctl_stats(ctx, uarg,
				       _IOC_SIZE(SVA_SHIM_IOC_STATS_ABI2));
	case SVA_SHIM_IOC_READ:
	case SVA_SHIM_IOC_WRITE:
	case SVA_SHIM_IOC_SNAPSHOT:
	case SVA_SHIM_IOC_MIRROR:
	case SVA_SHIM_IOC_UNMIRROR:
	case SVA_SHIM_IOC_MIRROR_SEQ:
	case SVA_SHIM_IOC_DEVMEM:
	case SVA_SHIM_IOC_MIGRATE:
	case SVA_SHIM_IOC_EXCLUSIVE:
	case SVA_SHIM_IOC_RING_SETUP:
	case SVA_SHIM_IOC_RING_ENTER:
		/* The device works for a PASID: bind first. */
		if (!sva_bound(ctx))
			return -ENOTCONN;
		return sva_ioctl_bound(ctx, cmd, uarg);
	default:
		return -ENOTTY;
	}
}

static ssize_t sva_read(struct file *file, char __user *buf, size_t len,
			loff_t *ppos)
{
	struct sva_ctx *ctx = file->private_data;

	if (current->mm != ctx->mm)
		return -EPERM;
	return sva_events_read(ctx, buf, len, file->f_flags & O_NONBLOCK);
}

/* EPOLLIN: event records to read; EPOLLRDBAND: completions to reap. */
static __poll_t sva_poll(struct file *file, poll_table *wait)
{
	struct sva_ctx *ctx = file->private_data;

	return sva_events_poll(ctx, file, wait) |
	       sva_engine_poll(ctx, file, wait);
}

static int sva_mmap(struct file *file, struct vm_area_struct *vma)
{
	return sva_engine_mmap(file->private_data, vma);
}

static int sva_release(struct inode *inode, struct file *file)
{
	sva_ctx_destroy(file->private_data);
	return 0;
}

static const struct file_operations sva_fops = {
	.owner = THIS_MODULE,
	.open = sva_open,
	.release = sva_release,
	.unlocked_ioctl = sva_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.read = sva_read,
	.poll = sva_poll,
	.mmap = sva_mmap,
	.llseek = noop_llseek,
};

static struct miscdevice sva_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "sva",
	.fops = &sva_fops,
	/* root only; packaging/udev/60-sva.rules opens it to group sva */
	.mode = 0600,
};

static int __init sva_init(void)
{
	int ret = sva_engine_module_init();

	if (ret)
		return ret;
	ret = misc_register(&sva_misc);
	if (ret) {
		sva_engine_module_exit();
		return ret;
	}
	pr_info("/dev/sva ready, ABI %u\n", SVA_SHIM_ABI_VERSION);
	return 0;
}

static void __exit sva_exit(void)
{
	misc_deregister(&sva_misc);
	sva_engine_module_exit();
	sva_pasids_fini();
}

module_init(sva_init);
module_exit(sva_exit);
MODULE_DESCRIPTION("Software SVA device mirroring a process with HMM, for libsva");
MODULE_LICENSE("GPL");
