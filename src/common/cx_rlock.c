/*
 * cx_rlock.c - byte-range reader-writer locks (cx_rlock.h).
 *
 * Holds, waiting or granted, are kept in order of arrival; a hold is
 * granted once no earlier hold overlaps it with a write on either side.
 * Every unlock wakes all waiters to look again (a lock has a few holders
 * at a time: the I/O of one file on one node).
 *
 * Lock order: the mutex is a leaf, never held while the caller holds a
 * range (it is let go before cx_rlock_lock returns).
 */
#include "common/cx_rlock.h"

#include <pthread.h>
#include <stdlib.h>

struct cx_rlock {
	pthread_mutex_t mu;
	pthread_cond_t cv;               /* broadcast at every unlock */
	struct cx_rlock_hold *head;      /* under mu, in order of arrival */
	struct cx_rlock_hold **tailp;
};

struct cx_rlock *cx_rlock_new(void)
{
	struct cx_rlock *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->tailp = &l->head;
	return l;
}

void cx_rlock_free(struct cx_rlock *l)
{
	if (!l)
		return;
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

static bool conflicts(const struct cx_rlock_hold *a, const struct cx_rlock_hold *b)
{
	return (a->write || b->write) && a->from < b->to && b->from < a->to;
}

/* Does a hold that came before @h stand in its way?  (mu held) */
static bool blocked(const struct cx_rlock *l, const struct cx_rlock_hold *h)
{
	for (const struct cx_rlock_hold *e = l->head; e != h; e = e->next)
		if (conflicts(e, h))
			return true;
	return false;
}

void cx_rlock_lock(struct cx_rlock *l, struct cx_rlock_hold *h, uint64_t from, uint64_t to,
		   bool write)
{
	h->from = from;
	h->to = to;
	h->write = write;
	h->next = NULL;
	pthread_mutex_lock(&l->mu);
	*l->tailp = h;
	l->tailp = &h->next;
	while (blocked(l, h))
		pthread_cond_wait(&l->cv, &l->mu);
	pthread_mutex_unlock(&l->mu);
}

void cx_rlock_unlock(struct cx_rlock *l, struct cx_rlock_hold *h)
{
	struct cx_rlock_hold **pp;

	pthread_mutex_lock(&l->mu);
	for (pp = &l->head; *pp != h; pp = &(*pp)->next)
		;
	*pp = h->next;
	if (l->tailp == &h->next)
		l->tailp = pp;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}
