// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* The kernel backend's ops table, devices and bindings. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmod.h"

static int kmod_enumerate(struct sva_dev_desc *descs, unsigned int max)
{
	if (access(KMOD_DEV_PATH, R_OK | W_OK))
		return 0;
	if (max) {
		memset(descs, 0, sizeof(*descs));
		snprintf(descs->name, sizeof(descs->name), "kmod0");
		snprintf(descs->backend, sizeof(descs->backend), "kmod");
	}
	return 1;
}

/* Is @fd a /dev/sva of a compatible ABI? */
static int kmod_probe_fd(int fd, struct sva_shim_version *v)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISCHR(st.st_mode) || ioctl(fd, SVA_SHIM_IOC_VERSION, v))
		return -ENODEV;
	if (v->abi != SVA_SHIM_ABI_VERSION)
		return sva_err(-EPROTO, "sva_shim ABI %u, libsva speaks %u",
			       v->abi, SVA_SHIM_ABI_VERSION);
	return 0;
}

static int kmod_open(struct sva_dev *dev, const char *name, int fd)
{
	struct sva_dev_caps *caps = &dev->caps;
	struct sva_shim_version v;
	int err;

	if (name && strcmp(name, "kmod0"))
		return -ENODEV;
	if (name) {
		dev->fd = sva__fd_open(KMOD_DEV_PATH, O_RDWR);
		if (dev->fd < 0)
			return dev->fd == -ENOENT ?
			       sva_err(-ENODEV, "%s: no such device (is sva_shim.ko loaded?)",
				       KMOD_DEV_PATH) : dev->fd;
	} else {
		dev->fd = sva__fd_dup(fd);
		if (dev->fd < 0)
			return dev->fd;
	}
	err = kmod_probe_fd(dev->fd, &v);
	if (err) {
		sva__fd_close(dev->fd);
		dev->fd = -1;
		return err;
	}
	if (dev->opts.flags & SVA_DEV_NO_ATC) {
		sva__fd_close(dev->fd);
		dev->fd = -1;
		return sva_err(-EOPNOTSUPP, "kmod0 always caches translations");
	}
	if (!dev->opts.queue_depth)
		dev->opts.queue_depth = 1024;
	snprintf(dev->name, sizeof(dev->name), "kmod0");
	caps->flags = SVA_CAP_PASID | SVA_CAP_ATS | SVA_CAP_MIRROR;
	if (!(dev->opts.flags & SVA_DEV_NO_PRI))
		caps->flags |= SVA_CAP_PRI | SVA_CAP_BLOCK_ON_FAULT;
	caps->pasid_bits = v.pasid_bits;
	caps->page_sizes = (1ull << 12) | (1ull << 21);
	caps->queue_depth = dev->opts.queue_depth;
	caps->prq_depth = 0;		/* faults are served synchronously */
	caps->atc_entries = 0;		/* the device page table is unbounded */
	caps->fault_batch = 64;
	caps->ops = (1u << SVA_OP_MAX) - 1;
	caps->max_xfer = 1ull << 30;
	/* Device memory where the kernel has device-private pages. */
	if (dev->opts.devmem_size & ~SVA_PAGE_MASK) {
		sva__fd_close(dev->fd);
		dev->fd = -1;
		return sva_err(-EINVAL, "devmem_size %llu is no page multiple",
			       (unsigned long long)dev->opts.devmem_size);
	}
	if ((v.caps & SVA_SHIM_CAP_MIGRATE) &&
	    !(dev->opts.flags & SVA_DEV_NO_DEVMEM)) {
		caps->flags |= SVA_CAP_MIGRATE;
		caps->devmem_size = dev->opts.devmem_size ?
				    dev->opts.devmem_size : KMOD_DEVMEM_DEFAULT;
	}
	/*
	 * make_device_exclusive_range(): the same kernels as migration, a
	 * part of device-private memory support (a device opened without
	 * it has neither, as on sim).
	 */
	if ((v.caps & SVA_SHIM_CAP_EXCLUSIVE) &&
	    !(dev->opts.flags & SVA_DEV_NO_DEVMEM))
		caps->flags |= SVA_CAP_EXCLUSIVE;
	return 0;
}

static void kmod_close(struct sva_dev *dev)
{
	sva__fd_close(dev->fd);
}

static int kmod_bind(struct sva_bind *bind)
{
	struct sva_shim_bind b = { 0 };
	struct sva_shim_version v;
	struct kmod_bind *kb;
	int err;

	kb = sva__zalloc(sizeof(*kb));
	if (!kb)
		return -ENOMEM;
	kb->stop_fd = -1;
	/* What this module takes (kmod_open() checked its ABI). */
	if (!ioctl(bind->dev->fd, SVA_SHIM_IOC_VERSION, &v))
		kb->shim_caps = v.caps;
	pthread_mutex_init(&kb->seen_lock, NULL);
	pthread_mutex_init(&kb->devmem_lock, NULL);
	pthread_mutex_init(&kb->ring_lock, NULL);
	pthread_mutex_init(&kb->track_lock, NULL);
	pthread_cond_init(&kb->track_cond, NULL);
	for (int i = 0; i < 2; i++) {
		kb->win[i] = sva__inject(SVA_INJECT_ALLOC) ? NULL :
			     aligned_alloc(SVA_PAGE_SIZE, KMOD_WINDOW);
		if (!kb->win[i]) {
			err = -ENOMEM;
			goto free;
		}
	}
	/*
	 * A context of our own mm, made through the device's fd rather than
	 * by path: the fd may have come from another process (SCM_RIGHTS)
	 * into a sandbox where /dev/sva can't be opened.
	 */
	kb->fd = sva__fd_ioctl(bind->dev->fd, SVA_SHIM_IOC_CONTEXT);
	if (kb->fd < 0) {
		err = kb->fd == -EMFILE ?
		      sva_err(-EMFILE, "kmod0: too many contexts for this user (sva_shim max_contexts_per_user)") :
		      sva_err(kb->fd, "kmod0: new context: %s", strerror(-kb->fd));
		goto free;
	}
	if (ioctl(kb->fd, SVA_SHIM_IOC_BIND, &b)) {
		err = sva_err(-errno, "bind: %s", strerror(errno));
		goto close;
	}
	if (b.hw_status && b.hw_status != -ENODEV)
		pr_info("kmod0: hardware SVA unavailable (%s), HMM mirror only\n",
			strerror(-b.hw_status));
	bind->pasid = b.pasid;
	bind->priv = kb;
	err = kmod_events_start(bind);
	if (err)
		goto close;
	/* Without the module's engine, descriptors keep the window path. */
	kmod_ring_start(bind);
	return 0;
close:
	sva__fd_close(kb->fd);
free:
	free(kb->win[0]);
	free(kb->win[1]);
	pthread_mutex_destroy(&kb->seen_lock);
	pthread_mutex_destroy(&kb->devmem_lock);
	pthread_mutex_destroy(&kb->ring_lock);
	kmod_tracks_fini(kb);
	free(kb);
	bind->priv = NULL;
	return err;
}

static void kmod_unbind(struct sva_bind *bind)
{
	struct kmod_bind *kb = kmod_bind_of(bind);

	kmod_events_stop(bind);
	kmod_ring_fini(kb);	/* its mapping holds the context too */
	sva__fd_close(kb->fd);	/* the kernel unbinds and tears down */
	free(kb->win[0]);
	free(kb->win[1]);
	pthread_mutex_destroy(&kb->seen_lock);
	pthread_mutex_destroy(&kb->devmem_lock);
	pthread_mutex_destroy(&kb->ring_lock);
	kmod_tracks_fini(kb);
	free(kb);
}

/* Fold what the kernel counted since last time into libsva's counters. */
void kmod_stats_sync(struct sva_bind *bind)
{
	/* Kernel counter (index in struct sva_shim_stats) -> libsva's. */
	static const struct {
		unsigned int k;
		enum sva_counter c;
	} map[] = {
		{ 0, SVA_C_TRANSLATIONS }, { 1, SVA_C_ATC_HITS },
		{ 2, SVA_C_ATC_MISSES }, { 3, SVA_C_PAGE_REQUESTS },
		{ 4, SVA_C_PAGE_GROUPS }, { 5, SVA_C_FAULTS_RESOLVED },
		{ 6, SVA_C_FAULTS_FAILED }, { 7, SVA_C_INVALIDATIONS },
		{ 8, SVA_C_ATC_INVALIDATED }, { 11, SVA_C_DEVMEM_ACCESSES },
		{ 12, SVA_C_MIGRATED_TO_DEV }, { 13, SVA_C_MIGRATED_TO_HOST },
		{ 14, SVA_C_CPU_FAULT_MIGRATIONS }, { 15, SVA_C_EVICTIONS },
		{ 16, SVA_C_EXCLUSIVE_GRANTS }, { 17, SVA_C_EXCLUSIVE_REVOKES },
	};
	struct kmod_bind *kb = kmod_bind_of(bind);
	struct sva_shim_stats now = { 0 };
	__u64 *n = &now.translations, *s;

	/* A module of ABI 2's first days has no exclusive counters: 0. */
	if (ioctl(kb->fd, SVA_SHIM_IOC_STATS, &now) &&
	    (errno != ENOTTY || ioctl(kb->fd, SVA_SHIM_IOC_STATS_ABI2, &now)))
		return;
	sva__mutex_lock(&kb->seen_lock);
	s = &kb->seen.translations;
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		sva__count(bind, map[i].c, n[map[i].k] - s[map[i].k]);
	/* The kernel counts pages; bytes are pages of SVA_PAGE_SIZE. */
	sva__count(bind, SVA_C_BYTES_TO_DEV,
		   (now.migrated_to_dev - kb->seen.migrated_to_dev) <<
		   SVA_PAGE_SHIFT);
	sva__count(bind, SVA_C_BYTES_TO_HOST,
		   (now.migrated_to_host - kb->seen.migrated_to_host) <<
		   SVA_PAGE_SHIFT);
	kb->seen = now;
	sva__mutex_unlock(&kb->seen_lock);
}

static void kmod_sync(struct sva_bind *bind)
{
	kmod_stats_sync(bind);
	kmod_mirrors_sync(bind);
	kmod_tracks_sync(bind);
}

const struct sva_backend_ops sva_kmod_ops = {
	.name = "kmod",
	.enumerate = kmod_enumerate,
	.open = kmod_open,
	.close = kmod_close,
	.bind = kmod_bind,
	.unbind = kmod_unbind,
	.sync = kmod_sync,
	.exec = kmod_exec,
	.run_queue = kmod_run_queue,
	.mirror_register = kmod_mirror_register,
	.mirror_unregister = kmod_mirror_unregister,
	.snapshot = kmod_snapshot,
	.migrate = kmod_migrate,
	.make_exclusive = kmod_make_exclusive,
	.attrs_track = kmod_attrs_track,
};
