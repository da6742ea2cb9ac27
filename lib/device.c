// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* Devices: enumeration across backends, open, capabilities, close. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static const struct sva_backend_ops *const backends[] = {
	&sva_sim_ops,
	&sva_kmod_ops,
};

int sva__check_owner(pid_t owner, const char *what)
{
	if (owner != getpid())
		return sva_err(-EPERM, "%s belongs to process %d, not %d (fork?)",
			       what, (int)owner, (int)getpid());
	return 0;
}

int sva__opts_copy(void *dst, size_t dst_sz, const void *src,
		   const char *what)
{
	size_t src_sz;

	memset(dst, 0, dst_sz);
	if (!src) {
		*(size_t *)dst = dst_sz;
		return 0;
	}
	src_sz = *(const size_t *)src;
	if (src_sz < sizeof(size_t))
		return sva_err(-EINVAL, "%s: sz %zu too small", what, src_sz);
	for (size_t i = dst_sz; i < src_sz; i++)
		if (((const char *)src)[i])
			return sva_err(-EINVAL, "%s: unknown field set at offset %zu",
				       what, i);
	memcpy(dst, src, MIN(src_sz, dst_sz));
	*(size_t *)dst = dst_sz;
	return 0;
}

int sva_devices(struct sva_dev_desc *descs, unsigned int max)
{
	int total = 0;

	if (!descs && max)
		return sva_err(-EINVAL, "descs is NULL with max %u", max);
	for (size_t i = 0; i < ARRAY_SIZE(backends); i++) {
		unsigned int room = max > (unsigned int)total ? max - total : 0;
		int n = backends[i]->enumerate(room ? descs + total : NULL,
					       room);

		if (n < 0)
			continue;	/* a backend that can't list has none */
		total += n;
	}
	return total;
}

static int dev_open(const char *name, int fd, const struct sva_dev_opts *opts,
		    struct sva_dev **devp)
{
	struct sva_dev *dev;
	int err = -ENODEV;

	if (!devp)
		return sva_err(-EINVAL, "devp is NULL");
	*devp = NULL;
	dev = sva__zalloc(sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	err = sva__opts_copy(&dev->opts, sizeof(dev->opts), opts,
			     "sva_dev_opts");
	if (err)
		goto free;
	if (dev->opts.flags & ~(unsigned int)(SVA_DEV_NO_PRI | SVA_DEV_NO_ATC)) {
		err = sva_err(-EINVAL, "unknown flags %#x", dev->opts.flags);
		goto free;
	}
	if (!dev->opts.storm_threshold)
		dev->opts.storm_threshold = 1000;
	dev->fd = -1;
	dev->owner = getpid();
	pthread_mutex_init(&dev->lock, NULL);
	pthread_mutex_init(&dev->storm_lock, NULL);
	list_init(&dev->binds);
	dev->caps.sz = sizeof(dev->caps);

	err = -ENODEV;
	for (size_t i = 0; i < ARRAY_SIZE(backends) && err == -ENODEV; i++) {
		dev->ops = backends[i];
		err = dev->ops->open(dev, name, fd);
	}
	if (err == -ENODEV && name)
		pr_warn("sva_dev_open: no device named '%s'\n", name);
	else if (err == -ENODEV)
		pr_warn("sva_dev_open_fd: fd %d is no libsva device\n", fd);
	if (err)
		goto destroy;
	*devp = dev;
	return 0;
destroy:
	pthread_mutex_destroy(&dev->storm_lock);
	pthread_mutex_destroy(&dev->lock);
free:
	free(dev);
	return err;
}

int sva_dev_open(const char *name, const struct sva_dev_opts *opts,
		 struct sva_dev **devp)
{
	if (!name || !*name || strlen(name) >= SVA_NAME_MAX)
		return sva_err(-EINVAL, "bad device name");
	return dev_open(name, -1, opts, devp);
}

int sva_dev_open_fd(int fd, const struct sva_dev_opts *opts,
		    struct sva_dev **devp)
{
	if (fd < 0)
		return sva_err(-EBADF, "fd %d", fd);
	return dev_open(NULL, fd, opts, devp);
}

int sva_dev_fd(const struct sva_dev *dev)
{
	return dev ? dev->fd : -EINVAL;
}

const char *sva_dev_name(const struct sva_dev *dev)
{
	return dev ? dev->name : NULL;
}

void sva_dev_close(struct sva_dev *dev)
{
	struct sva_bind *bind, *tmp;

	if (!dev || sva__check_owner(dev->owner, "device"))
		return;
	/* Unbind under no lock: sva_unbind() takes dev->lock itself. */
	list_for_each_entry_safe(bind, tmp, &dev->binds, dev_node)
		sva_unbind(bind);
	dev->ops->close(dev);
	pthread_mutex_destroy(&dev->storm_lock);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

int sva_dev_caps(const struct sva_dev *dev, struct sva_dev_caps *caps)
{
	size_t sz;

	if (!dev || !caps)
		return sva_err(-EINVAL, "NULL argument");
	sz = caps->sz;
	if (sz < sizeof(size_t))
		return sva_err(-EINVAL, "caps->sz %zu too small", sz);
	memcpy(caps, &dev->caps, MIN(sz, sizeof(dev->caps)));
	caps->sz = sz;
	return 0;
}

const char *sva_status_str(uint32_t status)
{
	static const char *const names[] = {
		[SVA_STATUS_SUCCESS] = "success",
		[SVA_STATUS_PAGE_FAULT] = "page fault",
		[SVA_STATUS_FAULT_INVALID] = "invalid access",
		[SVA_STATUS_FAULT_FAILURE] = "fault resolution failed",
		[SVA_STATUS_QUARANTINED] = "device quarantined",
	};

	return status < ARRAY_SIZE(names) ? names[status] : "unknown";
}

const char *sva_version(void)
{
	return PACKAGE_VERSION;
}
