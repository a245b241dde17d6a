/* SPDX-License-Identifier: ISC */
/*
 * The order process: a child of the agent that runs the blocking ACME
 * client (acme/) for one certificate and tells its parent, in lines on
 * a socketpair, which challenges to publish and how the order ended
 * (the protocol is described in agent_acme_job.c).  It holds none of the
 * agent's sockets nor its identity key, never touches its event base,
 * and dies with it.
 */

#include <sys/prctl.h>
#include <sys/socket.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acme.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "addr.h"
#include "agent.h"

/*
 * The config names challenges and key types without seeing acme/ (and
 * acme/ without seeing config/); the child hands one to the other by
 * value, so the values must agree.
 */
_Static_assert((int)CFG_CHALLENGE_HTTP01 == (int)ACME_CHAL_HTTP01 &&
    (int)CFG_CHALLENGE_TLSALPN01 == (int)ACME_CHAL_TLSALPN01 &&
    (int)CFG_CHALLENGE_DNS01 == (int)ACME_CHAL_DNS01,
    "enum cfg_challenge and enum acme_chal differ");
_Static_assert((int)CFG_KEY_EC_P256 == (int)ACME_KEY_EC_P256 &&
    (int)CFG_KEY_EC_P384 == (int)ACME_KEY_EC_P384 &&
    (int)CFG_KEY_RSA_2048 == (int)ACME_KEY_RSA_2048 &&
    (int)CFG_KEY_RSA_3072 == (int)ACME_KEY_RSA_3072,
    "enum cfg_key_type and enum acme_key_type differ");

struct agent_child {
	int	fd;
	FILE	*in;
};

static void	agent_child_drop(struct agent *);
static void	agent_child_say(struct agent_child *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	agent_child_publish(const struct acme_challenge *, int, char *,
		    size_t, void *);
static const char *agent_child_kind(enum acme_err_kind);
static void	agent_child_check_dns(struct agent_child *, const struct agent *,
		    char *const *, size_t);

/*
 * The parent's secrets and TLS state, in our copy of its memory.  The
 * order makes its own TLS context (libcurl, after the fork) and reads
 * its account key from the state directory; it needs none of these.
 */
static void
agent_child_drop(struct agent *a)
{
	key_clear(&a->key);
	explicit_bzero(a->admin_secret, sizeof(a->admin_secret));
	/* The tunnels' client context: no tunnel is dialled from here, and
	 * an attempt now fails instead of using the parent's context. */
	SSL_CTX_free(a->tls_ctx);
	a->tls_ctx = NULL;
}

static void
agent_child_say(struct agent_child *k, const char *fmt, ...)
{
	char	line[AGENT_ACME_LINE_MAX];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	/* One line each: flatten anything the CA put in a message. */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(k->fd, line, (size_t)n) != n)
		_exit(3);	/* the agent is gone */
}

/* Wait for the agent's "ok" or "fail MESSAGE" to the line just said. */
static int
agent_child_wait_ok(struct agent_child *k, char *msg, size_t msglen)
{
	char		line[AGENT_ACME_LINE_MAX];
	struct pollfd	pfd;

	pfd.fd = k->fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 60 * 1000) != 1 ||
	    fgets(line, sizeof(line), k->in) == NULL) {
		snprintf(msg, msglen, "the agent did not answer in 60 s");
		return -1;
	}
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, "ok") == 0)
		return 0;
	snprintf(msg, msglen, "%s", strncmp(line, "fail ", 5) == 0 ?
	    line + 5 : line);
	return -1;
}

static int
agent_child_publish(const struct acme_challenge *ch, int add, char *msg,
    size_t msglen, void *arg)
{
	struct agent_child	*k = arg;

	if (!add) {
		agent_child_say(k, "del %s %s %s", acme_chal_name(ch->type),
		    ch->name, ch->token);
		return 0;
	}
	agent_child_say(k, "add %s %s %s %s", acme_chal_name(ch->type),
	    ch->name, ch->token, ch->key_auth);
	return agent_child_wait_ok(k, msg, msglen);
}

static const char *
agent_child_kind(enum acme_err_kind k)
{
	static const char *names[] = { "none", "network", "tls", "ca",
	    "rate", "account", "dns", "challenge", "rejected", "timeout",
	    "local" };

	return (size_t)k < sizeof(names) / sizeof(names[0]) ? names[k] :
	    "ca";
}

void
agent_acme_child(struct agent *a, const char *name, char *const *names,
    size_t nnames, int check_only, int fd)
{
	const struct cfg_acme	*cf = a->cfg->acme;
	const char		*caa;
	struct agent_child	 k;
	struct acme_opts	 o;
	struct acme_error	 e;
	struct acme_key		*key;
	struct acme		*cl;
	enum acme_chal		 pref[CFG_CHALLENGE_MAX];
	char			 err[1024], *url = NULL, *certkey = NULL;
	char			*chain = NULL, *oldkey = NULL;
	time_t			 start, end;
	unsigned		 retry;
	size_t			 i;
	int			 rc;

	/*
	 * fork() without exec: this process starts as a copy of the agent.
	 * Drop what an order does not need before it talks to anyone, so
	 * that a fault that leaks memory (an over-read while parsing the
	 * CA's answers, say) cannot leak it.  The identity key would let a
	 * thief be this agent to its gateways, and the admin secret would
	 * let it renew and reload: wipe both.  (Code run here could still
	 * read the key file: we have the agent's user.)
	 */
	agent_child_drop(a);
	/* Our parent's signal handlers and event base are not ours. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	/*
	 * Nor are its sockets: a child holding the admin listener or a
	 * tunnel would keep them alive past the agent (a restart could not
	 * bind), and could write into a tunnel.  Every descriptor but the
	 * standard ones and our line to the parent goes, including the
	 * event base's epoll descriptor, so nothing of the loop can run
	 * here.  And it goes when the agent goes.
	 */
	if (fd != 3) {
		if (dup2(fd, 3) == -1)
			_exit(3);
		fd = 3;
	}
	closefrom(4);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(3);	/* the agent died before the line above */
	k.fd = fd;
	if ((k.in = fdopen(dup(fd), "r")) == NULL)
		_exit(3);
	memset(&e, 0, sizeof(e));
	memset(&o, 0, sizeof(o));
	o.directory = cf->directory;
	o.ca_bundle = cf->ca_bundle;
	o.email = cf->email;
	o.eab_kid = cf->eab_kid;
	o.eab_hmac = cf->eab_hmac;
	if ((key = acme_store_account(cf->state_dir, cf->directory, &url, err,
	    sizeof(err))) == NULL) {
		agent_child_say(&k, "fail local 0 account key: %s", err);
		_exit(1);
	}
	if ((cl = acme_new(&o, key, url)) == NULL) {
		agent_child_say(&k, "fail local 0 out of memory");
		_exit(1);
	}
	if (check_only) {
		if (acme_store_cert_load(cf->state_dir, name, &oldkey,
		    &chain, err, sizeof(err)) == -1) {
			agent_child_say(&k, "noari");
			_exit(0);
		}
		rc = acme_renewal_info(cl, chain, &start, &end, &retry, &e);
		if (rc == 1)
			agent_child_say(&k, "noari");
		else if (rc == 0)
			agent_child_say(&k, "ari %lld %lld %u", (long long)start,
			    (long long)end, retry);
		else
			agent_child_say(&k, "fail %s %u %s",
			    agent_child_kind(e.kind), e.retry_after_s, e.msg);
		_exit(0);
	}
	if (acme_account(cl, &e) == -1) {
		agent_child_say(&k, "fail %s %u %s", agent_child_kind(e.kind),
		    e.retry_after_s, e.msg);
		_exit(1);
	}
	if (url == NULL || strcmp(url, acme_account_url(cl)) != 0) {
		if (acme_store_account_url(cf->state_dir, cf->directory,
		    acme_account_url(cl), err, sizeof(err)) == -1) {
			agent_child_say(&k, "fail local 0 %s", err);
			_exit(1);
		}
		agent_child_say(&k, "account %s%s%s", acme_account_url(cl),
		    acme_terms(cl) != NULL ? " terms " : "",
		    acme_terms(cl) != NULL ? acme_terms(cl) : "");
	}
	/* CAA pinning (RFC 8657): our account, before any order. */
	caa = cf->caa_identity != NULL ? cf->caa_identity :
	    acme_caa_identity(cl);
	if (cf->caa_pin && caa == NULL)
		agent_child_say(&k, "warn the CA names no CAA identity "
		    "(caaIdentities in its directory): no CAA record pinned; "
		    "set acme.caa_identity");
	else if (cf->caa_pin) {
		agent_child_say(&k, "caa %s %s", caa, acme_account_url(cl));
		if (agent_child_wait_ok(&k, err, sizeof(err)) == -1) {
			agent_child_say(&k, "fail dns 0 the CAA records could "
			    "not be published: %s", err);
			_exit(1);
		}
	}
	agent_child_check_dns(&k, a, names, nnames);
	if ((certkey = acme_certkey_new((enum acme_key_type)cf->key_type)) ==
	    NULL) {
		agent_child_say(&k, "fail local 0 cannot make a certificate "
		    "key");
		_exit(1);
	}
	for (i = 0; i < cf->nchallenges; i++)
		pref[i] = (enum acme_chal)cf->challenges[i];
	if (acme_order(cl, (const char *const *)names, nnames, pref,
	    cf->nchallenges, certkey, agent_child_publish, &k, &chain,
	    &e) == -1) {
		agent_child_say(&k, "fail %s %u %s", agent_child_kind(e.kind),
		    e.retry_after_s, e.msg);
		_exit(1);
	}
	/* A stale account URL may have been replaced during the order. */
	if (url == NULL || strcmp(url, acme_account_url(cl)) != 0)
		(void)acme_store_account_url(cf->state_dir, cf->directory,
		    acme_account_url(cl), err, sizeof(err));
	if (acme_store_cert_save(cf->state_dir, name, certkey, chain, err,
	    sizeof(err)) == -1) {
		agent_child_say(&k, "fail local 0 saving the certificate: %s",
		    err);
		_exit(1);
	}
	agent_child_say(&k, "done");
	_exit(0);
}

/*
 * The CA resolves each name and probes what it finds; a name that does
 * not lead to a gateway fails validation.  Say so before the order, in
 * words that point at the DNS, since the CA's own error is terse.  Only
 * a warning: the CA may see other DNS than this machine does, and a
 * gateway may be reached here by another address than the public one.
 * Runs in the child: lookups block.
 */
static void
agent_child_check_dns(struct agent_child *k, const struct agent *a,
    char *const *names, size_t nnames)
{
	struct addrinfo	 hints, *res, *ai, *gres, *gi;
	char		 addr[64], gws[512];
	size_t		 i, j, n;
	int		 rc, hit;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	for (i = 0; i < nnames; i++) {
		res = NULL;
		if ((rc = getaddrinfo(names[i], NULL, &hints, &res)) != 0) {
			agent_child_say(k, "warn %s does not resolve here (%s); "
			    "the CA must find A/AAAA records pointing at your "
			    "gateways, or validation fails", names[i],
			    gai_strerror(rc));
			continue;
		}
		hit = 0;
		gws[0] = '\0';
		for (j = 0, n = 0; j < a->cfg->ngateways && !hit; j++) {
			gres = NULL;
			if (getaddrinfo(a->cfg->gateways[j].host, NULL, &hints,
			    &gres) != 0)
				continue;
			for (gi = gres; gi != NULL && !hit; gi = gi->ai_next)
				for (ai = res; ai != NULL && !hit;
				    ai = ai->ai_next)
					hit = ai->ai_addrlen == gi->ai_addrlen &&
					    memcmp(ai->ai_addr, gi->ai_addr,
					    ai->ai_addrlen) == 0;
			if (gres != NULL && n < sizeof(gws))
				n += (size_t)snprintf(gws + n, sizeof(gws) - n,
				    "%s%s %s", n ? ", " : "",
				    a->cfg->gateways[j].name, addr_fmt(
				    gres->ai_addr, addr, sizeof(addr)));
			freeaddrinfo(gres);
		}
		if (!hit && gws[0] != '\0')
			agent_child_say(k, "warn %s resolves to %s, which is "
			    "none of the gateways' addresses (%s); unless they "
			    "are reached there by another address, point the "
			    "name at them", names[i], addr_fmt(res->ai_addr,
			    addr, sizeof(addr)), gws);
		freeaddrinfo(res);
	}
}
