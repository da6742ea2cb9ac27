// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* Devices: enumeration across backends, open, capabilities, close. */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static const struct sva_backend_ops *const backends[] = {
	&sva_sim_ops,
	&sva_kmod_ops,
	&sva_vfio_ops,
};

/*
 * getpid() is a system call, and every public call asks: keep the answer
 * in a page the kernel zeroes in any child (MADV_WIPEONFORK: fork(),
 * _Fork(), clone() without CLONE_VM alike), where it is asked again. No
 * page (mmap or madvise refused): ask each time.
 */
static pid_t *pid_cache;

__attribute__((constructor)) static void pid_cache_init(void)
{
	void *p = mmap(NULL, SVA_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	if (madvise(p, SVA_PAGE_SIZE, MADV_WIPEONFORK)) {
		munmap(p, SVA_PAGE_SIZE);
		return;
	}
	pid_cache = p;
}

static pid_t self_pid(void)
{
	pid_t pid;

	if (!pid_cache)
		return getpid();
	pid = __atomic_load_n(pid_cache, __ATOMIC_RELAXED);
	if (!pid) {
		pid = getpid();
		__atomic_store_n(pid_cache, pid, __ATOMIC_RELAXED);
	}
	return pid;
}

int sva__check_owner(pid_t owner, const char *what)
{
	if (owner != self_pid())
		return sva_err(-EPERM, "%s belongs to process %d, not %d (fork?)",
			       what, (int)owner, (int)getpid());
	return 0;
}

/* ------------------------------------------------- fds and fork() */

/*
 * Every fd libsva holds that a child must not keep (a /dev/sva context
 * keeps the parent's PASID and notifier alive for as long as any process
 * has it open). fd_lock is taken around fork(): each fd is either in the
 * table and closed in the child, or not open yet, or closed already.
 */
static pthread_mutex_t fd_lock = PTHREAD_MUTEX_INITIALIZER;
static int *fd_table;			/* fd_lock */
static size_t fd_count, fd_cap;		/* fd_lock */
static pthread_once_t fd_once = PTHREAD_ONCE_INIT;

static void fd_atfork_prepare(void)
{
	sva__mutex_lock(&fd_lock);
}

static void fd_atfork_parent(void)
{
	sva__mutex_unlock(&fd_lock);
}

static void fd_atfork_child(void)
{
	for (size_t i = 0; i < fd_count; i++)
		close(fd_table[i]);
	fd_count = 0;
	sva__mutex_unlock(&fd_lock);
}

static void fd_atfork_register(void)
{
	pthread_atfork(fd_atfork_prepare, fd_atfork_parent, fd_atfork_child);
}

/* Caller holds fd_lock. Closes @fd when it can't be tracked. */
static int fd_track_locked(int fd)
{
	if (fd < 0)
		return -errno;
	if (fd_count == fd_cap) {
		size_t cap = fd_cap ? 2 * fd_cap : 16;
		int *t = realloc(fd_table, cap * sizeof(*t));

		if (!t) {
			close(fd);
			return -ENOMEM;
		}
		fd_table = t;
		fd_cap = cap;
	}
	fd_table[fd_count++] = fd;
	return fd;
}

/*
 * A new fd is made between these two, under fd_lock: a fork() then finds
 * it either not made yet or in the table, never made and untracked.
 */
static void fd_new_begin(void)
{
	pthread_once(&fd_once, fd_atfork_register);
	sva__mutex_lock(&fd_lock);
}

static int fd_new_end(int fd)
{
	fd = fd_track_locked(fd);
	sva__mutex_unlock(&fd_lock);
	return fd;
}

int sva__fd_open(const char *path, int flags)
{
	fd_new_begin();
	return fd_new_end(open(path, flags | O_CLOEXEC));
}

int sva__fd_create(const char *path, int flags, mode_t mode)
{
	fd_new_begin();
	return fd_new_end(open(path, flags | O_CREAT | O_CLOEXEC, mode));
}

int sva__fd_dup(int old)
{
	fd_new_begin();
	return fd_new_end(fcntl(old, F_DUPFD_CLOEXEC, 0));
}

int sva__fd_eventfd(void)
{
	fd_new_begin();
	return fd_new_end(eventfd(0, EFD_CLOEXEC));
}

int sva__fd_ioctl(int dev_fd, unsigned long request)
{
	fd_new_begin();
	return fd_new_end(ioctl(dev_fd, request));
}

int sva__fd_ioctl_arg(int dev_fd, unsigned long request, void *arg)
{
	int fd;

	fd_new_begin();
	fd = ioctl(dev_fd, request, arg);
	/* VFIO's device fds come without close-on-exec. */
	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd_new_end(fd);
}

void sva__fd_close(int fd)
{
	if (fd < 0)
		return;
	sva__mutex_lock(&fd_lock);
	for (size_t i = 0; i < fd_count; i++) {
		if (fd_table[i] == fd) {
			fd_table[i] = fd_table[--fd_count];
			break;
		}
	}
	close(fd);
	if (!fd_count) {
		free(fd_table);
		fd_table = NULL;
		fd_cap = 0;
	}
	sva__mutex_unlock(&fd_lock);
}

int sva__thread_create(pthread_t *thread, const char *name,
		       void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(thread, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Seen in top -H, perf and gdb; a print hook tells by it that it
	 * runs on the library's thread (sva_set_print(3)). */
	if (!err)
		pthread_setname_np(*thread, name);
	return -err;
}

void sva__out_copy(void *dst, size_t dst_sz, const void *src, size_t known)
{
	memcpy(dst, src, MIN(dst_sz, known));
	if (dst_sz > known)
		memset((char *)dst + known, 0, dst_sz - known);
	*(size_t *)dst = dst_sz;
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
	SVA_NO_CANCEL;
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
	if (dev->opts.flags & ~(unsigned int)(SVA_DEV_NO_PRI | SVA_DEV_NO_ATC |
					      SVA_DEV_NO_DEVMEM)) {
		err = sva_err(-EINVAL, "unknown flags %#x", dev->opts.flags);
		goto free;
	}
	err = sva__resv_opts_check(&dev->opts);
	if (err)
		goto free;
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
	err = sva__resv_load(dev);
	if (err) {
		dev->ops->close(dev);
		goto destroy;
	}
	/* The caller's array need not outlive the call: dev->resv is it. */
	dev->opts.reserved = NULL;
	dev->opts.nr_reserved = 0;
	/* After the backend's open: a trace path may name the device. */
	err = sva__trace_open(dev);
	if (err) {
		dev->ops->close(dev);
		sva__resv_free(dev);
		goto destroy;
	}
	/* Prefetch is migration: only where the device can migrate. */
	if (!(dev->caps.flags & SVA_CAP_MIGRATE) || !dev->ops->migrate) {
		dev->caps.flags &= ~(unsigned int)SVA_CAP_MIGRATE;
		dev->caps.ops &= ~(1u << SVA_OP_PREFETCH);
		dev->caps.devmem_size = 0;
	}
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
	SVA_NO_CANCEL;

	if (!name || !*name || strlen(name) >= SVA_NAME_MAX)
		return sva_err(-EINVAL, "bad device name");
	return dev_open(name, -1, opts, devp);
}

int sva_dev_open_fd(int fd, const struct sva_dev_opts *opts,
		    struct sva_dev **devp)
{
	SVA_NO_CANCEL;

	if (fd < 0)
		return sva_err(-EBADF, "fd %d", fd);
	return dev_open(NULL, fd, opts, devp);
}

int sva_dev_fd(const struct sva_dev *dev)
{
	int err = sva__dev_usable(dev);

	return err ? err : dev->fd;
}

const char *sva_dev_name(const struct sva_dev *dev)
{
	return sva__dev_usable(dev) ? NULL : dev->name;
}

void sva_dev_close(struct sva_dev *dev)
{
	SVA_NO_CANCEL;
	struct sva_bind *bind, *tmp;
	bool busy;

	if (!dev || sva__check_owner(dev->owner, "device"))
		return;
	/* Unbinding waits for callbacks to return: not from one. */
	sva__mutex_lock(&dev->lock);
	busy = !list_empty(&dev->binds);
	sva__mutex_unlock(&dev->lock);
	if (busy && sva__forbidden_in_callback("sva_dev_close() of a device with bindings"))
		return;
	/* Unbind under no lock: sva_unbind() takes dev->lock itself. */
	list_for_each_entry_safe(bind, tmp, &dev->binds, dev_node)
		sva_unbind(bind);
	dev->ops->close(dev);
	sva__resv_free(dev);
	/* Every thread that recorded for the device has stopped. */
	sva__trace_close(dev);
	pthread_mutex_destroy(&dev->storm_lock);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

int sva_dev_caps(const struct sva_dev *dev, struct sva_dev_caps *caps)
{
	int err;

	if (!dev || !caps)
		return sva_err(-EINVAL, "NULL argument");
	err = sva__check_owner(dev->owner, "device");
	if (err)
		return err;
	if (caps->sz < sizeof(size_t))
		return sva_err(-EINVAL, "caps->sz %zu too small", caps->sz);
	sva__out_copy(caps, caps->sz, &dev->caps, sizeof(dev->caps));
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
