/* SPDX-License-Identifier: ISC */
/*
 * The one owner of each stream a gateway opens to the agent.  A stream
 * is taken by one module (a backend dial, a TLS termination, an http-01
 * answer), which names itself as the stream's owner; the tunnel's
 * stream_closed reaches that owner and no one else, so no module has to
 * ask whether a closing stream is one of its own.
 */

#include <stddef.h>

#include "agent.h"

void
agent_stream_own(struct tun_stream *s, struct agent_stream *own,
    const struct agent_stream_ops *ops, void *arg)
{
	own->ops = ops;
	own->arg = arg;
	tun_stream_set_udata(s, own);
}

void
agent_stream_closed(struct tun_stream *s, const char *reason)
{
	struct agent_stream	*own = tun_stream_udata(s);

	if (own == NULL)
		return;		/* reset before anyone took it */
	/* Once: the owner frees own with its object. */
	tun_stream_set_udata(s, NULL);
	own->ops->closed(s, reason, own->arg);
}
