/* SPDX-License-Identifier: ISC */
/*
 * What a gateway's stream sent, kept until the replica answers (see
 * docs/PROTOCOL.md §5.7): if the stream fails before any byte comes
 * back, the visitor's connection is handed back with these bytes in
 * front of what it sent since, and tried on another replica.  The copy
 * is bounded: a piece that would take it past its cap drops it, and the
 * stream can no longer be replayed.  An evbuffer, no socket: the unit
 * tests fill and restore it directly (tests/unit/test_replay.c).
 */

#include "tun_replay.h"

int
tun_replay_init(struct tun_replay *r, size_t max)
{
	r->buf = NULL;
	r->max = max;
	if (max > 0 && (r->buf = evbuffer_new()) == NULL)
		return -1;
	return 0;
}

void
tun_replay_add(struct tun_replay *r, const void *data, size_t len)
{
	if (r->buf == NULL)
		return;
	if (evbuffer_get_length(r->buf) + len > r->max ||
	    evbuffer_add(r->buf, data, len) == -1)
		tun_replay_clear(r);
}

int
tun_replay_held(const struct tun_replay *r)
{
	return r->buf != NULL;
}

void
tun_replay_clear(struct tun_replay *r)
{
	if (r->buf != NULL) {
		evbuffer_free(r->buf);
		r->buf = NULL;
	}
}

int
tun_replay_restore(struct tun_replay *r, struct evbuffer *dst)
{
	if (r->buf == NULL || evbuffer_prepend_buffer(dst, r->buf) == -1)
		return -1;
	tun_replay_clear(r);
	return 0;
}
