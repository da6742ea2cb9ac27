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
 */
#include "sim.h"

static void *notify_thread(void *arg)
{
	struct sim_mm *mm = arg;
	struct sim_notifier *n = &mm->notify;
	struct sim_notify_ent e;
	struct sim_bind *sb;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->exiting && !n->count)
			pthread_cond_wait(&n->cv, &n->lock);
		if (n->exiting)
			break;
		e = n->ring[n->head];
		n->head = (n->head + 1) % SIM_NOTIFY_RING;
		n->count--;
		pthread_mutex_unlock(&n->lock);

		/*
		 * No lock held while a binding's callbacks run: a callback
		 * may bind, unbind another binding, register mirrors,
		 * snapshot. sb->notifying keeps sb on the list (and its
		 * binding alive) meanwhile: sim_mm_put() waits for it.
		 */
		pthread_mutex_lock(&mm->notify_lock);
		list_for_each_entry(sb, &mm->binds, mm_node) {
			if (sb->dying)
				continue;
			sb->notifying++;
			pthread_mutex_unlock(&mm->notify_lock);
			sva__mirrors_notify(sb->bind, e.start, e.end, e.ev);
			pthread_mutex_lock(&mm->notify_lock);
			if (!--sb->notifying)
				pthread_cond_broadcast(&mm->notify_cv);
		}
		pthread_mutex_unlock(&mm->notify_lock);

		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

void sim_notify_push(struct sim_mm *mm, uint64_t start, uint64_t end,
		     enum sva_inval_event ev)
{
	struct sim_notifier *n = &mm->notify;
	struct sim_notify_ent *last;

	pthread_mutex_lock(&n->lock);
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
	pthread_mutex_unlock(&n->lock);
}

int sim_notify_start(struct sim_mm *mm)
{
	struct sim_notifier *n = &mm->notify;
	int err;

	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cv, NULL);
	n->head = n->count = 0;
	n->exiting = false;
	err = sva__thread_create(&n->thread, notify_thread, mm);
	if (err) {
		pthread_cond_destroy(&n->cv);
		pthread_mutex_destroy(&n->lock);
		return err;
	}
	n->started = true;
	return 0;
}

void sim_notify_stop(struct sim_mm *mm)
{
	struct sim_notifier *n = &mm->notify;

	if (!n->started)
		return;
	pthread_mutex_lock(&n->lock);
	n->exiting = true;
	pthread_cond_signal(&n->cv);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->lock);
	n->started = false;
}
