// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Mirror ranges on the kernel backend: each is a sva_shim mirror range. Its
 * sequence lives in the kernel and is advanced before the munmap/madvise
 * that invalidates it returns; libsva's copy follows it (never runs ahead
 * of it), refreshed on read_begin/read_retry (the sync op) and before a
 * callback. The callbacks come from the kernel's event records, one per
 * invalidation, read by a thread per binding. When the kernel's queue
 * overflowed, a LOST record says so: every mirror is then told it was
 * invalidated whole, so no invalidation goes untold.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kmod.h"

static enum sva_inval_event event_of(uint32_t reason)
{
	switch (reason) {
	case SVA_SHIM_INVAL_UNMAP:
		return SVA_INVAL_UNMAP;
	case SVA_SHIM_INVAL_CLEAR:
		return SVA_INVAL_DISCARD;
	case SVA_SHIM_INVAL_PROTECTION:
		return SVA_INVAL_PROTECT;
	case SVA_SHIM_INVAL_RELEASE:
		return SVA_INVAL_RELEASE;
	case SVA_SHIM_INVAL_REMAP:
		return SVA_INVAL_REMAP;
	default:
		return SVA_INVAL_OTHER;
	}
}

/* libsva's sequences start at 1, the kernel's at 0. */
static void mirror_set_seq(struct sva_mirror *m, uint64_t kseq)
{
	atomic_store_explicit(&m->seq, kseq + 1, memory_order_release);
}

/* Refresh the sequences of the mirrors overlapping [start, end). */
static void mirrors_sync_range(struct sva_bind *bind, uint64_t start,
			       uint64_t end)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	struct sva_shim_mirror km;
	struct sva_mirror *m;
	size_t i;

	sva__mutex_lock(&bind->mirror_lock);
	mirror_index_for_each(m, &bind->mirrors, start, end, i) {
		memset(&km, 0, sizeof(km));
		km.id = (uint32_t)m->backend_id;
		if (!ioctl(kb->fd, SVA_SHIM_IOC_MIRROR_SEQ, &km) &&
		    atomic_load(&m->seq) < km.seq + 1)
			mirror_set_seq(m, km.seq);
	}
	sva__mutex_unlock(&bind->mirror_lock);
}

/*
 * The kernel tells of a page request group once it was answered, and of
 * an invalidation without the device page table entries it dropped: the
 * trace has no service time nor ATC count for them.
 */
static void event_trace(struct sva_bind *bind,
			const struct sva_shim_event *ev)
{
	switch (ev->type) {
	case SVA_SHIM_EVENT_PAGE_REQUEST:
		if (ev->end > ev->start)
			sva__trace_page_group(bind, 0, ev->start,
					      ev->end - SVA_PAGE_SIZE,
					      (unsigned int)((ev->end - ev->start) >>
							     SVA_PAGE_SHIFT),
					      ev->access, ev->response);
		return;
	case SVA_SHIM_EVENT_INVALIDATE:
		sva__trace_inval(bind, ev->start, ev->end, event_of(ev->reason),
				 SVA_TRACE_UNKNOWN);
		return;
	case SVA_SHIM_EVENT_MIGRATE:
		/* CPU faults: on the event reader, as sim's fault service;
		 * evictions: on the thread whose migration needed room. */
		sva__trace_migrate_by(bind, ev->access == SVA_SHIM_MIG_EVICTION ?
				      ev->mirror : 0, ev->end, ev->seq,
				      ev->access == SVA_SHIM_MIG_EVICTION ?
				      SVA_TRACE_MIG_EVICTION :
				      SVA_TRACE_MIG_CPU_FAULT,
				      (int)ev->reason - 1, ev->start,
				      ev->response);
		return;
	default:
		return;
	}
}

static void event_dispatch(struct sva_bind *bind,
			   const struct sva_shim_event *ev)
{
	if (sva__tracing(bind->dev))
		event_trace(bind, ev);
	switch (ev->type) {
	case SVA_SHIM_EVENT_INVALIDATE:
		if (!ev->mirror)	/* it overlapped no mirror */
			return;
		kmod_tracks_event(bind, ev);
		mirrors_sync_range(bind, ev->start, ev->end);
		sva__mirrors_notify(bind, ev->start, ev->end,
				    event_of(ev->reason));
		return;
	case SVA_SHIM_EVENT_LOST:
		/* Callbacks were lost, not sequences: tell every mirror. */
		pr_debug("kmod: %llu event records lost: whole-mirror invalidations\n",
			 (unsigned long long)ev->seq);
		mirrors_sync_range(bind, 0, UINT64_MAX);
		kmod_tracks_lost(bind);
		sva__mirrors_notify(bind, 0, UINT64_MAX, SVA_INVAL_OTHER);
		return;
	default:
		return;
	}
}

/*
 * Unbinding: the records still queued (the last descriptors' page
 * requests) go to the trace. No callback runs: the mirrors are gone.
 */
static void events_drain_trace(struct sva_bind *bind)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	struct pollfd pfd = { .fd = kb->fd, .events = POLLIN };
	struct sva_shim_event ev[32];
	ssize_t n;

	while (sva__tracing(bind->dev) && poll(&pfd, 1, 0) == 1 &&
	       (pfd.revents & POLLIN)) {
		n = read(kb->fd, ev, sizeof(ev));
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(ev[0]); i++)
			event_trace(bind, &ev[i]);
	}
}

static void *events_thread(void *arg)
{
	struct sva_bind *bind = arg;
	struct kmod_bind *kb = kmod_bind_of(bind);
	struct pollfd pfd[2] = {
		{ .fd = kb->fd, .events = POLLIN },
		{ .fd = kb->stop_fd, .events = POLLIN },
	};
	struct sva_shim_event ev[32];
	ssize_t n;

	sva__trace_set_role(SVA_ROLE_KMOD_EVENTS);
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents) {
			events_drain_trace(bind);
			break;
		}
		if (!(pfd[0].revents & POLLIN))
			continue;
		n = read(kb->fd, ev, sizeof(ev));
		for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(ev[0]); i++)
			event_dispatch(bind, &ev[i]);
	}
	return NULL;
}

int kmod_events_start(struct sva_bind *bind)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	int err;

	kb->stop_fd = sva__fd_eventfd();
	if (kb->stop_fd < 0)
		return -errno;
	err = sva__thread_create(&kb->events, "sva-kmod-events",
				 events_thread, bind);
	if (err) {
		sva__fd_close(kb->stop_fd);
		kb->stop_fd = -1;
	}
	return err;
}

void kmod_events_stop(struct sva_bind *bind)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	uint64_t one = 1;

	if (kb->stop_fd < 0)
		return;
	if (write(kb->stop_fd, &one, sizeof(one)) != sizeof(one))
		pr_warn("kmod: can't stop the event thread\n");
	pthread_join(kb->events, NULL);
	sva__fd_close(kb->stop_fd);
	kb->stop_fd = -1;
}

int kmod_mirror_register(struct sva_mirror *m)
{
	struct sva_shim_mirror km = { .addr = m->start,
				      .len = m->end - m->start };

	if (ioctl(kmod_bind_of(m->bind)->fd, SVA_SHIM_IOC_MIRROR, &km))
		return errno == ENOSPC ?
		       sva_err(-ENOSPC, "kmod0: too many mirrors on this binding (sva_shim max_mirrors_per_context)") :
		       sva_err(-errno, "mirror %#llx+%#llx: %s",
			       (unsigned long long)km.addr,
			       (unsigned long long)km.len, strerror(errno));
	m->backend_id = km.id;
	return 0;
}

void kmod_mirror_unregister(struct sva_mirror *m)
{
	uint32_t id = (uint32_t)m->backend_id;

	if (ioctl(kmod_bind_of(m->bind)->fd, SVA_SHIM_IOC_UNMIRROR, &id))
		pr_warn("kmod: unmirror %u: %s\n", id, strerror(errno));
}

void kmod_mirrors_sync(struct sva_bind *bind)
{
	mirrors_sync_range(bind, 0, UINT64_MAX);
}

int kmod_snapshot(struct sva_mirror *m, uint64_t addr, uint64_t len,
		  uint8_t *states, unsigned int fault)
{
	struct sva_shim_snapshot s = {
		.flags = (fault & SVA_ACCESS_READ ? SVA_SHIM_SNAP_FAULT_READ : 0) |
			 (fault & SVA_ACCESS_WRITE ? SVA_SHIM_SNAP_FAULT_WRITE : 0),
	};
	uint64_t done;

	/* The states bits are the kernel's: SVA_PAGE_* == SVA_SHIM_PAGE_*. */
	for (done = 0; done < len; done += s.len) {
		s.addr = addr + done;
		s.len = MIN(len - done, (uint64_t)SVA_SHIM_MAX_XFER);
		s.states = (uintptr_t)(states + (done >> SVA_PAGE_SHIFT));
		if (ioctl(kmod_bind_of(m->bind)->fd, SVA_SHIM_IOC_SNAPSHOT, &s))
			return sva_err(-errno, "snapshot: %s", strerror(errno));
	}
	return 0;
}
