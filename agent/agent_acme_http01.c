/* SPDX-License-Identifier: ISC */
/*
 * The http-01 responder: a probe stream routed to us for a published
 * http-01 challenge gets its request head read under a size cap and a
 * deadline, and the key authorization (or a 404) written back, then the
 * connection closes.  Each probe owns its stream.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "acme.h"
#include "agent.h"
#include "agent_acme_priv.h"
#include "log.h"

#define ACME_HTTP_HEAD_MAX	8192
#define ACME_HTTP_WAIT_S	10

/*
 * A probe being answered, over a bufferevent pair whose other end the
 * tunnel holds.  Freeing that end tells this one nothing, so the probe
 * owns its stream and hears of its end through
 * agent_acme_http01_closed(), where it is freed.  It does not depend on
 * struct agent_acme, which a reload may free meanwhile.
 */
struct agent_acme_http01 {
	struct agent_stream	 own;
	struct agent		*a;
	struct tun_stream	*s;
	struct bufferevent	*bev;
	char			 name[NAME_MAX_LEN + 1];
	int			 replied;
};

static void	agent_acme_http01_read_cb(struct bufferevent *, void *);
static void	agent_acme_http01_event_cb(struct bufferevent *, short,
		    void *);
static void	agent_acme_http01_write_cb(struct bufferevent *, void *);
static void	agent_acme_http01_closed(struct tun_stream *, const char *,
		    void *);
static void	agent_acme_http01_done(struct agent_acme_http01 *);

static const struct agent_stream_ops agent_acme_http01_ops = {
	.closed = agent_acme_http01_closed,
};

void
agent_acme_http01_open(struct agent *a, struct tun_stream *s,
    const char *name)
{
	struct agent_acme_http01	*h;
	struct bufferevent		*pair[2];
	struct timeval			 tv = { ACME_HTTP_WAIT_S, 0 };

	/* Read the request head here and answer it. */
	if (bufferevent_pair_new(a->base, BEV_OPT_CLOSE_ON_FREE, pair) == -1) {
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		bufferevent_free(pair[0]);
		bufferevent_free(pair[1]);
		tun_stream_reset(s, TUN_E_INTERNAL, "agent out of memory");
		return;
	}
	h->a = a;
	h->s = s;
	h->bev = pair[1];
	agent_stream_own(s, &h->own, &agent_acme_http01_ops, h);
	snprintf(h->name, sizeof(h->name), "%s", name);
	bufferevent_setcb(h->bev, agent_acme_http01_read_cb, NULL,
	    agent_acme_http01_event_cb, h);
	bufferevent_set_timeouts(h->bev, &tv, &tv);
	bufferevent_enable(h->bev, EV_READ | EV_WRITE);
	tun_stream_attach(s, pair[0]);
}

static void
agent_acme_http01_read_cb(struct bufferevent *bev, void *arg)
{
	struct agent_acme_http01	*h = arg;
	struct agent_acme		*m = h->a->acme;
	struct evbuffer			*in = bufferevent_get_input(bev);
	struct evbuffer_ptr		 end;
	struct agent_chal		*ch = NULL;
	char				 line[512], *tok, *sp;
	const char			*status, *body;
	size_t				 n;

	if (h->replied) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos == -1) {
		end = evbuffer_search(in, "\n\n", 2, NULL);
		if (end.pos == -1) {
			if (evbuffer_get_length(in) > ACME_HTTP_HEAD_MAX)
				agent_acme_http01_done(h);
			return;
		}
	}
	n = evbuffer_copyout(in, line, sizeof(line) - 1);
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	/* "GET /.well-known/acme-challenge/TOKEN HTTP/1.1" */
	if (strncmp(line, "GET ", 4) == 0 && strncmp(line + 4, TUN_ACME_PATH,
	    strlen(TUN_ACME_PATH)) == 0) {
		tok = line + 4 + strlen(TUN_ACME_PATH);
		if ((sp = strchr(tok, ' ')) != NULL)
			*sp = '\0';
		if (m != NULL)
			TAILQ_FOREACH(ch, &m->chals, entry)
				if (ch->type == ACME_CHAL_HTTP01 &&
				    strcmp(ch->name, h->name) == 0 &&
				    strcmp(ch->token, tok) == 0)
					break;
	}
	evbuffer_drain(in, evbuffer_get_length(in));
	status = ch != NULL ? "200 OK" : "404 Not Found";
	body = ch != NULL ? ch->key_auth : "no such ACME challenge here\n";
	evbuffer_add_printf(bufferevent_get_output(bev), "HTTP/1.1 %s\r\n"
	    "Content-Type: text/plain\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", status, strlen(body), body);
	log_info("acme %s: http-01 probe %s", h->name, ch != NULL ?
	    "answered" : "for an unknown token: 404");
	h->replied = 1;
	/* Close once the answer is out (the write callback fires when
	 * the output buffer drains). */
	bufferevent_setcb(bev, agent_acme_http01_read_cb,
	    agent_acme_http01_write_cb, agent_acme_http01_event_cb, h);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	/* A pair may have passed it all on already. */
	agent_acme_http01_write_cb(bev, h);
}

static void
agent_acme_http01_write_cb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		agent_acme_http01_done(arg);
}

static void
agent_acme_http01_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_acme_http01	*h = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		/* The prober neither sent a request nor went away. */
		tun_stream_reset(h->s, TUN_E_CANCEL, "http-01 probe timed out");
		return;		/* freed by agent_acme_http01_closed */
	}
	bufferevent_disable(bev, EV_READ);
	if (!h->replied)
		agent_acme_http01_done(h);
}

/* Our side is done: EOF to the stream's end, and wait for it to go. */
static void
agent_acme_http01_done(struct agent_acme_http01 *h)
{
	/* The read timeout stays armed: a prober that never closes is
	 * reset rather than kept. */
	bufferevent_disable(h->bev, EV_WRITE);
	bufferevent_flush(h->bev, EV_WRITE, BEV_FINISHED);
}

/* The stream ended: the probe's only exit. */
static void
agent_acme_http01_closed(struct tun_stream *s, const char *reason, void *arg)
{
	struct agent_acme_http01	*h = arg;

	(void)s;
	(void)reason;
	bufferevent_free(h->bev);
	free(h);
}
