/* tun_replay.h: a copy of what a stream sent, for a replay elsewhere. */
#ifndef PORCH_TUN_REPLAY_H
#define PORCH_TUN_REPLAY_H

#include <stddef.h>

#include <event2/buffer.h>

struct tun_replay {
	struct evbuffer	*buf;		/* NULL: nothing kept, or given up */
	size_t		 max;
};

/* Keep up to max bytes (0: none).  Returns 0, or -1 out of memory. */
int	tun_replay_init(struct tun_replay *, size_t max);

/* len bytes were sent: keep them, or past max give up for good. */
void	tun_replay_add(struct tun_replay *, const void *, size_t len);

/* Is every byte sent still kept? */
int	tun_replay_held(const struct tun_replay *);

/* Drop the copy: the peer answered, or the stream ends. */
void	tun_replay_clear(struct tun_replay *);

/* Put the copy in front of dst's bytes and drop it.  Returns 0, or -1
 * (the copy stays). */
int	tun_replay_restore(struct tun_replay *, struct evbuffer *dst);

#endif
