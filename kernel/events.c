// SPDX-License-Identifier: GPL-2.0
/*
 * Event records to userspace: page requests and invalidations, read()
 * whole records at a time, poll()able. A full queue drops the new record
 * and counts it in events_lost; producers never wait.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/uaccess.h>

#include "shim.h"

/* Callers: any context, including MMU notifier callbacks. */
void sva_event_push(struct sva_ctx *ctx, const struct sva_shim_event *ev)
{
	unsigned long flags;
	bool queued;

	spin_lock_irqsave(&ctx->ev_lock, flags);
	queued = kfifo_put(&ctx->events, *ev);
	spin_unlock_irqrestore(&ctx->ev_lock, flags);
	if (queued)
		wake_up_interruptible(&ctx->ev_wait);
	else
		sva_stat_add(ctx, SVA_ST_EVENTS_LOST, 1);
}

static bool events_pending(struct sva_ctx *ctx)
{
	unsigned long flags;
	bool pending;

	spin_lock_irqsave(&ctx->ev_lock, flags);
	pending = !kfifo_is_empty(&ctx->events);
	spin_unlock_irqrestore(&ctx->ev_lock, flags);
	return pending;
}

ssize_t sva_events_read(struct sva_ctx *ctx, char __user *buf, size_t len,
			bool nonblock)
{
	struct sva_shim_event ev;
	unsigned long flags;
	size_t done = 0;
	int ret;

	if (len < sizeof(ev))
		return -EINVAL;
	if (!events_pending(ctx)) {
		if (nonblock)
			return -EAGAIN;
		ret = wait_event_interruptible(ctx->ev_wait,
					       events_pending(ctx));
		if (ret)
			return ret;
	}
	while (done + sizeof(ev) <= len) {
		spin_lock_irqsave(&ctx->ev_lock, flags);
		ret = kfifo_get(&ctx->events, &ev);
		spin_unlock_irqrestore(&ctx->ev_lock, flags);
		if (!ret)
			break;
		/* Copy unlocked: the user buffer may fault. */
		if (copy_to_user(buf + done, &ev, sizeof(ev)))
			return done ? done : -EFAULT;
		done += sizeof(ev);
	}
	return done;
}

__poll_t sva_events_poll(struct sva_ctx *ctx, struct file *file,
			 poll_table *wait)
{
	poll_wait(file, &ctx->ev_wait, wait);
	return events_pending(ctx) ? EPOLLIN | EPOLLRDNORM : 0;
}
