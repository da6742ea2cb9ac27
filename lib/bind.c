// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* Bindings: the calling process's mm bound to a device under a PASID. */
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

int sva_bind(struct sva_dev *dev, const struct sva_bind_opts *opts,
	     struct sva_bind **bindp)
{
	SVA_NO_CANCEL;
	struct sva_bind_opts o;
	struct sva_bind *bind;
	unsigned int depth;
	int err;

	if (!dev || !bindp)
		return sva_err(-EINVAL, "NULL argument");
	*bindp = NULL;
	err = sva__check_owner(dev->owner, "device");
	if (err)
		return err;
	err = sva__forbidden_in_callback("sva_bind()");
	if (err)
		return err;
	err = sva__opts_copy(&o, sizeof(o), opts, "sva_bind_opts");
	if (err)
		return err;
	if (o.flags)
		return sva_err(-EINVAL, "unknown flags %#x", o.flags);
	depth = o.queue_depth ? o.queue_depth : dev->caps.queue_depth;
	if (depth > dev->caps.queue_depth)
		return sva_err(-EINVAL, "queue_depth %u over the device's %u",
			       depth, dev->caps.queue_depth);

	if (sva__inject(SVA_INJECT_PASID))
		return sva_err(-ENOSPC, "%s: PASID space exhausted", dev->name);
	bind = sva__zalloc(sizeof(*bind));
	if (!bind)
		return -ENOMEM;
	bind->dev = dev;
	bind->owner = getpid();
	pthread_mutex_init(&bind->mirror_lock, NULL);
	pthread_cond_init(&bind->cb_done, NULL);
	sva__range_attrs_init(&bind->attrs);
	err = dev->ops->bind(bind);
	if (err)
		goto free;
	err = sva__queue_init(bind, depth);
	if (err)
		goto unbind;

	sva__mutex_lock(&dev->lock);
	list_add_tail(&bind->dev_node, &dev->binds);
	sva__mutex_unlock(&dev->lock);
	*bindp = bind;
	return 0;
unbind:
	dev->ops->unbind(bind);
free:
	sva__range_attrs_fini(&bind->attrs);
	pthread_cond_destroy(&bind->cb_done);
	pthread_mutex_destroy(&bind->mirror_lock);
	free(bind);
	return err;
}

int sva_unbind(struct sva_bind *bind)
{
	SVA_NO_CANCEL;
	struct sva_dev *dev;
	int err;

	err = sva__bind_usable(bind);
	if (err)
		return err;
	/* It would wait for the very callback that calls it. */
	err = sva__forbidden_in_callback("sva_unbind()");
	if (err)
		return err;
	dev = bind->dev;

	/* From here on no mirror can be registered, not even by a callback. */
	sva__mutex_lock(&bind->mirror_lock);
	bind->unbinding = true;
	sva__mutex_unlock(&bind->mirror_lock);
	/*
	 * Release the mirrors while the queue still runs: a callback may
	 * submit and wait on its own binding. A mirror its own callback
	 * unregistered lives until that callback returns; once none runs,
	 * none can start (the index is empty), and the queue may go.
	 */
	while (sva__mirror_release_first(bind))
		;
	sva__mirrors_wait_callbacks(bind);
	/* Drain: queued work may still fault, and is waited for. */
	sva__queue_fini(bind);

	/* Out of the device's list before the backend lets go of it:
	 * sva_dev_stats() syncs the bindings it finds there. */
	sva__mutex_lock(&dev->lock);
	list_del(&bind->dev_node);
	sva__mutex_unlock(&dev->lock);
	dev->ops->unbind(bind);

	sva__range_attrs_fini(&bind->attrs);
	pthread_cond_destroy(&bind->cb_done);
	pthread_mutex_destroy(&bind->mirror_lock);
	mirror_index_fini(&bind->mirrors);
	free(bind);
	return 0;
}

int sva_bind_pasid(const struct sva_bind *bind, uint32_t *pasid)
{
	int err;

	if (!bind || !pasid)
		return sva_err(-EINVAL, "NULL argument");
	err = sva__check_owner(bind->owner, "binding");
	if (err)
		return err;
	*pasid = bind->pasid;
	return 0;
}
