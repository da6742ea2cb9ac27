// SPDX-License-Identifier: GPL-2.0
/*
 * Event records to userspace: page requests and invalidations, read()
 * whole records at a time, poll()able. Producers never wait: a full queue
 * drops the new record and counts it, and the next read() starts with a
 * LOST record carrying that count, so that userspace learns of every loss
 * and resynchronises (the mirror sequences themselves are never lost: they
 * advance in the notifier, not through this queue).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>

#include "shim.h"

void sva_events_init(struct sva_ctx *ctx)
{
	spin_lock_init(&ctx->ev_lock);
	INIT_KFIFO(ctx->events);
	mutex_init(&ctx->ev_read_lock);
	init_waitqueue_head(&ctx->ev_wait);
}

/* Callers: any context, including MMU notifier callbacks. */
void sva_event_push(struct sva_ctx *ctx, const struct sva_shim_event *ev)
{
	unsigned long flags;

	spin_lock_irqsave(&ctx->ev_lock, flags);
	if (!kfifo_put(&ctx->events, *ev)) {
		ctx->ev_lost++;
		sva_stat_add(ctx, SVA_ST_EVENTS_LOST, 1);
	}
	spin_unlock_irqrestore(&ctx->ev_lock, flags);
	wake_up_interruptible(&ctx->ev_wait);
}

/*
 * A record that may be left out: pushed only while the queue is at most
 * half full, so that it never makes invalidation records get lost (a LOST
 * record costs the library a whole-mirror resync). Returns whether it was.
 */
bool sva_event_push_optional(struct sva_ctx *ctx,
			     const struct sva_shim_event *ev)
{
	unsigned long flags;
	bool pushed = false;

	spin_lock_irqsave(&ctx->ev_lock, flags);
	if (!ctx->ev_lost && kfifo_len(&ctx->events) < SVA_EVENTS / 2)
		pushed = kfifo_put(&ctx->events, *ev);
	spin_unlock_irqrestore(&ctx->ev_lock, flags);
	if (pushed)
		wake_up_interruptible(&ctx->ev_wait);
	return pushed;
}

static bool events_pending(struct sva_ctx *ctx)
{
	unsigned long flags;
	bool pending;

	spin_lock_irqsave(&ctx->ev_lock, flags);
	pending = !kfifo_is_empty(&ctx->events) || ctx->ev_lost;
	spin_unlock_irqrestore(&ctx->ev_lock, flags);
	return pending;
}

static u64 events_lost(struct sva_ctx *ctx)
{
	unsigned long flags;
	u64 lost;

	spin_lock_irqsave(&ctx->ev_lock, flags);
	lost = ctx->ev_lost;
	spin_unlock_irqrestore(&ctx->ev_lock, flags);
	return lost;
}

/*
 * Copy out the LOST record, if records were lost, then whole queued
 * records; a record leaves the queue only once copied. Returns the bytes
 * copied (0: nothing pending), or -EFAULT when @buf faulted before any
 * record was. Caller holds ev_read_lock: kfifo's one consumer.
 */
static ssize_t events_copy(struct sva_ctx *ctx, char __user *buf,
			   size_t len)
{
	u64 lost = events_lost(ctx);
	unsigned long flags;
	unsigned int copied;
	size_t done = 0;

	if (lost) {
		struct sva_shim_event ev = {
			.type = SVA_SHIM_EVENT_LOST, .seq = lost,
		};

		if (copy_to_user(buf, &ev, sizeof(ev)))
			return -EFAULT;
		/* Producers may have lost more meanwhile: keep those. */
		spin_lock_irqsave(&ctx->ev_lock, flags);
		ctx->ev_lost -= lost;
		spin_unlock_irqrestore(&ctx->ev_lock, flags);
		done = sizeof(ev);
	}
	if (kfifo_to_user(&ctx->events, buf + done, len - done, &copied))
		return done ? done : -EFAULT;
	return done + copied;
}

ssize_t sva_events_read(struct sva_ctx *ctx, char __user *buf, size_t len,
			bool nonblock)
{
	ssize_t ret;

	if (len < sizeof(struct sva_shim_event))
		return -EINVAL;
	for (;;) {
		if (mutex_lock_interruptible(&ctx->ev_read_lock))
			return -ERESTARTSYS;
		ret = events_copy(ctx, buf, len);
		mutex_unlock(&ctx->ev_read_lock);
		if (ret)
			return ret;
		/* Another reader took what woke us: wait again. */
		if (nonblock)
			return -EAGAIN;
		ret = wait_event_interruptible(ctx->ev_wait,
					       events_pending(ctx));
		if (ret)
			return ret;
	}
}

__poll_t sva_events_poll(struct sva_ctx *ctx, struct file *file,
			 poll_table *wait)
{
	poll_wait(file, &ctx->ev_wait, wait);
	return events_pending(ctx) ? EPOLLIN | EPOLLRDNORM : 0;
}
