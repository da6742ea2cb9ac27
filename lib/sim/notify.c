// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Invalidation callbacks, run on a thread of their own. The event thread
 * that reads userfaultfd must never wait on user code: a callback that
 * unmaps or frees memory the device touched makes munmap() wait for that
 * very thread to read the event. So the event thread only queues the
 * ranges (never blocking: a full queue folds the new range into the last
 * one, a wider notification being always safe) and this thread calls the
 * mirrors' callbacks, holding no lock of ours while one runs. Sequences
 * are advanced by the event thread already.
 *
 * The thread starts with the first mirror that has a callback, and ranges
 * are queued only while one is registered (mm->cb_mirrors): a munmap() of
 * memory no callback watches wakes no thread but the event thread. That
 * drops nothing owed: a mirror counted after the push looked was inserted
 * in its binding's index after the invalidation advanced the sequences
 * (sim_notify_want() counts it before the core inserts it), so no callback
 * of that invalidation is owed to it.
 */
#include "sim.h"

static void *notify_thread(void *arg)
{
	struct sim_mm *mm = arg;
	struct sim_notifier *n = &mm->notify;
	struct sim_notify_ent e;
	struct sim_bind *sb;

	sva__mutex_lock(&n->lock);
	for (;;) {
		while (!n->exiting && !n->count)
			sva__cond_wait(&n->cv, &n->lock);
		if (n->exiting)
			break;
		e = n->ring[n->head];
		n->head = (n->head + 1) % SIM_NOTIFY_RING;
		n->count--;
		sva__mutex_unlock(&n->lock);

		/*
		 * No lock held while a binding's callbacks run: a callback
		 * may bind, unbind another binding, register mirrors,
		 * snapshot. sb->notifying keeps sb on the list (and its
		 * binding alive) meanwhile: sim_mm_put() waits for it.
		 */
		sva__mutex_lock(&mm->notify_lock);
		list_for_each_entry(sb, &mm->binds, mm_node) {
			if (sb->dying)
				continue;
			sb->notifying++;
			sva__mutex_unlock(&mm->notify_lock);
			sva__mirrors_notify(sb->bind, e.start, e.end, e.ev);
			sva__mutex_lock(&mm->notify_lock);
			if (!--sb->notifying)
				pthread_cond_broadcast(&mm->notify_cv);
		}
		sva__mutex_unlock(&mm->notify_lock);

		sva__mutex_lock(&n->lock);
	}
	sva__mutex_unlock(&n->lock);
	return NULL;
}

void sim_notify_push(struct sim_mm *mm, uint64_t start, uint64_t end,
		     enum sva_inval_event ev)
{
	struct sim_notifier *n = &mm->notify;
	struct sim_notify_ent *last;

	/* Seq-cst, paired with sim_notify_want(): see above. */
	if (!atomic_load(&mm->cb_mirrors))
		return;
	sva__mutex_lock(&n->lock);
	if (n->count == SIM_NOTIFY_RING) {
		last = &n->ring[(n->head + n->count - 1) % SIM_NOTIFY_RING];
		last->start = MIN(last->start, start);
		last->end = MAX(last->end, end);
		if (last->ev != ev)
			last->ev = SVA_INVAL_OTHER;
	} else {
		n->ring[(n->head + n->count++) % SIM_NOTIFY_RING] =
			(struct sim_notify_ent){ start, end, ev };
	}
	pthread_cond_signal(&n->cv);
	sva__mutex_unlock(&n->lock);
}

void sim_notify_init(struct sim_mm *mm)
{
	struct sim_notifier *n = &mm->notify;

	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cv, NULL);
	n->head = n->count = 0;
	n->exiting = false;
	n->started = false;
}

void sim_notify_fini(struct sim_mm *mm)
{
	pthread_cond_destroy(&mm->notify.cv);
	pthread_mutex_destroy(&mm->notify.lock);
}

int sim_notify_want(struct sim_mm *mm)
{
	struct sim_notifier *n = &mm->notify;
	int err = 0;

	sva__mutex_lock(&mm->start_lock);
	if (!n->started) {
		err = sva__thread_create(&n->thread, "sva-notify",
					 notify_thread, mm);
		n->started = !err;
	}
	/* Counted once the thread runs: a push that sees it has a reader. */
	if (!err)
		atomic_fetch_add(&mm->cb_mirrors, 1);
	sva__mutex_unlock(&mm->start_lock);
	return err;
}

void sim_notify_unwant(struct sim_mm *mm)
{
	atomic_fetch_sub(&mm->cb_mirrors, 1);
}

void sim_notify_stop(struct sim_mm *mm)
{
	struct sim_notifier *n = &mm->notify;

	if (!n->started)
		return;
	sva__mutex_lock(&n->lock);
	n->exiting = true;
	pthread_cond_signal(&n->cv);
	sva__mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	n->started = false;
}
