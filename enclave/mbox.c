/*
 * mbox.c: the main thread's completion queue (mbox.h).
 */
#include "enclave/mbox.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"

struct mbox {
	pthread_mutex_t lock;
	struct emsg *head, *tail;
	void (*wake)(void *arg);
	void *arg;
};

int mbox_new(struct mbox **out, void (*wake)(void *arg), void *arg)
{
	struct mbox *m = calloc(1, sizeof *m);
	*out = NULL;
	if (!m)
		return APP_ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->wake = wake;
	m->arg = arg;
	*out = m;
	return 0;
}

void mbox_set_wake(struct mbox *m, void (*wake)(void *arg), void *arg)
{
	pthread_mutex_lock(&m->lock);
	m->wake = wake;
	m->arg = arg;
	pthread_mutex_unlock(&m->lock);
}

struct emsg *emsg_new(enum emsg_type t, const uint8_t job[32])
{
	struct emsg *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->type = t;
	if (job)
		memcpy(m->job, job, 32);
	return m;
}

void emsg_free(struct emsg *m)
{
	if (!m)
		return;
	free(m->text);
	event_free(m->ev);
	free(m->sizes);
	free(m);
}

void mbox_free(struct mbox *m)
{
	if (!m)
		return;
	for (struct emsg *e = m->head, *n; e; e = n) {
		n = e->next;
		emsg_free(e);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void mbox_post(struct mbox *m, struct emsg *msg)
{
	void (*wake)(void *);
	void *arg;
	msg->next = NULL;
	pthread_mutex_lock(&m->lock);
	if (m->tail)
		m->tail->next = msg;
	else
		m->head = msg;
	m->tail = msg;
	wake = m->wake;
	arg = m->arg;
	pthread_mutex_unlock(&m->lock);
	if (wake)
		wake(arg);
}

struct emsg *mbox_take(struct mbox *m)
{
	pthread_mutex_lock(&m->lock);
	struct emsg *h = m->head;
	m->head = m->tail = NULL;
	pthread_mutex_unlock(&m->lock);
	return h;
}
