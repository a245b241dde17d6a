/* SPDX-License-Identifier: ISC */
/*
 * CLUSTER frames (PROTOCOL §4.9): where this gateway and its live peers
 * are.  An agent that keeps DNS records publishes these addresses for
 * the names it serves here; a peer passes ours on to its own agents,
 * since it forwards their visitors' names to us and ours to them.
 *
 * Nothing here is believed about anyone else: a gateway speaks for
 * itself on a peer link, and to its agents for itself and the peers it
 * has a link to now.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "log.h"

/* Our own entry: key, name and public_addresses. */
static void
gw_cluster_self(struct gw *gw, struct tun_gw_info *self)
{
	const struct cfg_gateway	*c = gw->cfg;
	size_t				 i;

	memset(self, 0, sizeof(*self));
	self->flags = TUN_CF_SELF;
	memcpy(self->pub, gw->key.pub, KEY_PUB_LEN);
	snprintf(self->name, sizeof(self->name), "%.63s", gw->name);
	for (i = 0; i < c->npublic && i < TUN_CLUSTER_ADDR_MAX; i++)
		tun_addr_from_sa(&self->addr[self->naddr++],
		    (const struct sockaddr *)&c->public_addrs[i]);
	for (i = 0; i < self->naddr; i++)
		self->addr[i].port = 0;
}

static void
gw_cluster_send(struct tun *tun, const struct tun_gw_info *v, size_t n)
{
	uint8_t	*buf;
	size_t	 len;

	if ((buf = malloc(TUN_MAX_PAYLOAD)) == NULL) {
		log_warnx("out of memory for a CLUSTER frame");
		return;
	}
	len = tun_cluster_encode(v, n, buf);
	tun_send_frame(tun, TUN_CLUSTER, 0, buf, len);
	free(buf);
}

void
gw_cluster_send_agent(struct gw *gw, struct tun *tun)
{
	struct tun_gw_info	*v;
	size_t			 n;

	if ((v = calloc(TUN_CLUSTER_GW_MAX, sizeof(*v))) == NULL) {
		log_warnx("out of memory for a CLUSTER frame");
		return;
	}
	gw_cluster_self(gw, &v[0]);
	n = 1 + gw_peer_cluster(gw, v + 1, TUN_CLUSTER_GW_MAX - 1);
	gw_cluster_send(tun, v, n);
	free(v);
}

void
gw_cluster_send_peer(struct gw *gw, struct tun *tun)
{
	struct tun_gw_info	self;

	gw_cluster_self(gw, &self);
	gw_cluster_send(tun, &self, 1);
}

void
gw_cluster_reload(struct gw *gw)
{
	gw_peer_cluster_resend(gw);
	gw_tun_cluster_changed(gw);
}
