/* SPDX-License-Identifier: ISC */
/*
 * The job in flight, at most one: an order (or a look at the CA's
 * renewal information) in a child process, supervised from the event
 * loop.  The child speaks to us in lines on a socketpair:
 *
 *	child:  add TYPE NAME TOKEN KEYAUTH	publish a challenge answer
 *	us:     ok | fail MESSAGE		once the gateways route it here
 *	child:  del TYPE NAME TOKEN		the CA decided
 *	child:  done				certificate saved in the store
 *	child:  fail KIND RETRY_S MESSAGE	the order failed
 *	child:  ari START END RETRY_S | noari	renewal window (check job)
 *	child:  account URL [terms URL]		the account it used or made
 *	child:  warn MESSAGE			logged as is (DNS checks)
 *	child:  caa ISSUER ACCOUNT_URL		pin CAA records (caa_pin)
 *	us:     ok | fail MESSAGE		once every server has them
 *
 * The child's side is agent_acme_child.c.  A job ends once both its
 * result (or EOF) and its exit status are in; a watchdog kills one that
 * runs too long.  The outcome goes to the certificate's schedule.
 */

#include <sys/socket.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "acme_store.h"
#include "agent.h"
#include "agent_acme_priv.h"
#include "log.h"

#define ACME_JOB_MAX_S		(15 * 60)	/* kill a stuck child */

static void	agent_acme_read_cb(struct bufferevent *, void *);
static void	agent_acme_event_cb(struct bufferevent *, short, void *);
static void	agent_acme_line(struct agent_acme *, char *);
static int	agent_acme_parse_chal(const char *, enum acme_chal *);
static void	agent_acme_job_end(struct agent_acme *, int ok,
		    const char *kind, unsigned retry_s, const char *msg);
static void	agent_acme_job_maybe_done(struct agent_acme *);
static void	agent_acme_job_reaped(pid_t, int, void *);

int
agent_acme_spawn(struct agent_acme *m, struct agent_cert *c,
    enum agent_job_kind kind)
{
	int	sv[2];
	pid_t	pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1) {
		log_warn("acme %s: socketpair", c->name);
		return -1;
	}
	if ((pid = fork()) == -1) {
		log_warn("acme %s: fork", c->name);
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		agent_acme_child(m->a, c->name, c->names, c->nnames,
		    kind == AGENT_JOB_CHECK, sv[1]);
	}
	close(sv[1]);
	evutil_make_socket_nonblocking(sv[0]);
	evutil_make_socket_closeonexec(sv[0]);
	m->job_bev = bufferevent_socket_new(m->a->base, sv[0],
	    BEV_OPT_CLOSE_ON_FREE);
	if (m->job_bev == NULL) {
		close(sv[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	if (agent_child_watch(m->a, pid, agent_acme_job_reaped, m) == -1) {
		bufferevent_free(m->job_bev);
		m->job_bev = NULL;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	bufferevent_setcb(m->job_bev, agent_acme_read_cb, NULL,
	    agent_acme_event_cb, m);
	bufferevent_enable(m->job_bev, EV_READ);
	m->job = c;
	m->job_kind = kind;
	m->job_pid = pid;
	m->job_started = time(NULL);
	m->job_reaped = 0;
	m->job_result = 0;
	c->ordering = kind == AGENT_JOB_ORDER;
	if (kind == AGENT_JOB_ORDER) {
		c->st.last_attempt = m->job_started;
		c->requested = 0;
		c->orders++;
		c->order_state = AGENT_ORDER_RUNNING;
		/* Said here when the schedule could not say it. */
		if (!c->announced)
			log_info("acme %s: ordering now", c->name);
		c->announced = 0;
	}
	log_debug("acme %s: %s job started, pid %ld", c->name,
	    kind == AGENT_JOB_ORDER ? "order" : "renewal-info", (long)pid);
	return 0;
}

static void
agent_acme_read_cb(struct bufferevent *bev, void *arg)
{
	struct agent_acme	*m = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 n;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		agent_acme_line(m, line);
		free(line);
		if (m->job_bev == NULL)
			return;
	}
	if (evbuffer_get_length(in) > AGENT_ACME_LINE_MAX) {
		log_warnx("acme: worker sent an overlong line; stopping it");
		kill(m->job_pid, SIGKILL);
		agent_acme_job_end(m, 0, "local", 0, "internal error: "
		    "overlong line from the ACME worker");
	}
}

static void
agent_acme_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent_acme	*m = arg;

	(void)bev;
	(void)what;
	/* EOF: the child is exiting.  Its status comes with SIGCHLD. */
	bufferevent_free(m->job_bev);
	m->job_bev = NULL;
	agent_acme_chal_clear(m);
	agent_acme_job_maybe_done(m);
}

static void
agent_acme_line(struct agent_acme *m, char *line)
{
	struct agent_cert	*c = m->job;
	char			*f[6], *p = line, *msg = NULL;
	enum acme_chal		 type;
	size_t			 nf = 0;
	long long		 s, e;

	if (strncmp(line, "warn ", 5) == 0) {
		log_warnx("acme %s: %s", c->name, line + 5);
		return;
	}
	/* Up to five words, the rest of a fail line is its message. */
	while (nf < 5 && p != NULL && *p != '\0') {
		f[nf++] = strsep(&p, " ");
		if (nf == 3 && strcmp(f[0], "fail") == 0) {
			msg = p;
			break;
		}
	}
	if (nf == 0)
		return;
	if (strcmp(f[0], "add") == 0 && nf == 5 && p == NULL &&
	    agent_acme_parse_chal(f[1], &type) == 0) {
		agent_acme_chal_add(m, type, f[2], f[3], f[4]);
	} else if (strcmp(f[0], "del") == 0 && nf == 4 &&
	    agent_acme_parse_chal(f[1], &type) == 0) {
		agent_acme_chal_del(m, type, f[2], f[3]);
	} else if (strcmp(f[0], "caa") == 0 && nf == 3) {
		agent_acme_caa(m, f[1], f[2]);
	} else if (strcmp(f[0], "account") == 0 && nf >= 2) {
		log_info("acme: using account %s%s%s", f[1],
		    nf >= 4 ? "; terms of service agreed: " : "",
		    nf >= 4 ? f[3] : "");
	} else if (strcmp(f[0], "done") == 0) {
		agent_acme_job_end(m, 1, NULL, 0, NULL);
	} else if (strcmp(f[0], "noari") == 0) {
		c->ari_checked = time(NULL);
		c->ari_start = c->ari_end = 0;
		m->job_result = 1;
	} else if (strcmp(f[0], "ari") == 0 && nf == 4 &&
	    sscanf(f[1], "%lld", &s) == 1 && sscanf(f[2], "%lld", &e) == 1) {
		c->ari_checked = time(NULL);
		c->ari_start = (time_t)s;
		c->ari_end = (time_t)e;
		m->job_result = 1;
	} else if (strcmp(f[0], "fail") == 0 && nf == 3) {
		agent_acme_job_end(m, 0, f[1], (unsigned)strtoul(f[2], NULL,
		    10), msg != NULL ? msg : "failed");
	} else
		log_warnx("acme: unexpected line from the worker");
}

static int
agent_acme_parse_chal(const char *s, enum acme_chal *t)
{
	if (strcmp(s, "http-01") == 0)
		*t = ACME_CHAL_HTTP01;
	else if (strcmp(s, "tls-alpn-01") == 0)
		*t = ACME_CHAL_TLSALPN01;
	else if (strcmp(s, "dns-01") == 0)
		*t = ACME_CHAL_DNS01;
	else
		return -1;
	return 0;
}

/*
 * A result line came: an order succeeded or failed.  (The child exits
 * right after; agent_acme_job_maybe_done frees the job.)
 */
static void
agent_acme_job_end(struct agent_acme *m, int ok, const char *kind,
    unsigned retry_s, const char *msg)
{
	struct agent_cert	*c = m->job;
	char			 b[64], err[512];
	unsigned		 delay;

	if (c == NULL || m->job_result)
		return;
	m->job_result = 1;
	if (m->job_kind == AGENT_JOB_CHECK) {
		/* Renewal information is a hint: fall back to 2/3. */
		log_info("acme %s: renewal information unavailable: %s",
		    c->name, msg);
		c->ari_checked = time(NULL);
		return;
	}
	if (ok) {
		m->issued++;
		c->order_state = AGENT_ORDER_SUCCEEDED;
		c->st.failures = 0;
		c->st.next_attempt = 0;
		c->st.last_success = time(NULL);
		c->st.last_error[0] = '\0';
		/* A new certificate: its renewal window is asked for
		 * later, not at once. */
		c->ari_checked = time(NULL);
		c->ari_start = c->ari_end = 0;
		agent_acme_cert_load(c, 0);
		log_info("acme %s: certificate obtained, valid until %s "
		    "(issuer %s)", c->name, agent_acme_time(c->not_after, b,
		    sizeof(b)), c->issuer);
		if (c->m->a->term != NULL &&
		    agent_term_reload(m->a, c->name, err, sizeof(err)) == -1)
			log_warnx("acme %s: TLS termination keeps the old "
			    "certificate: %s", c->name, err);
		agent_acme_hook_run(m, c);
		agent_acme_save_state(c);
		return;
	}
	m->failed++;
	c->order_state = AGENT_ORDER_FAILED;
	/* No certificate came of it: a manual retry (after a fix) is no
	 * duplicate. */
	if (c->manual_order == c->orders)
		c->manual_at = 0;
	c->st.failures++;
	delay = agent_acme_backoff(m, c->st.failures, retry_s);
	c->st.next_attempt = time(NULL) + delay;
	snprintf(c->st.last_error, sizeof(c->st.last_error), "%s", msg);
	log_warnx("acme %s: %s%s; next attempt in %s (failure %u in a "
	    "row)", c->name, strcmp(kind, "rate") == 0 ? "" : "order failed: ",
	    msg, agent_acme_delay(delay, b, sizeof(b)), c->st.failures);
	agent_acme_save_state(c);
}

/* Both the result (or EOF) and the exit status are in: next job. */
static void
agent_acme_job_maybe_done(struct agent_acme *m)
{
	struct agent_cert	*c = m->job;
	char			 msg[128];

	if (c == NULL || m->job_bev != NULL || !m->job_reaped)
		return;
	if (!m->job_result) {
		if (WIFSIGNALED(m->job_status))
			snprintf(msg, sizeof(msg), "the ACME worker was "
			    "killed by signal %d", WTERMSIG(m->job_status));
		else
			snprintf(msg, sizeof(msg), "the ACME worker exited "
			    "with status %d and no result",
			    WEXITSTATUS(m->job_status));
		agent_acme_job_end(m, 0, "local", 0, msg);
	}
	m->job = NULL;
	m->job_pid = 0;
	c->ordering = 0;
	if (m->wait_name[0] != '\0') {
		evtimer_del(m->wait_timer);
		m->wait_name[0] = '\0';
	}
	if (c->present)
		agent_acme_schedule(c);
	else
		agent_acme_cert_drop(m, c);
	agent_acme_next(m);
}

void
agent_acme_reply(struct agent_acme *m, const char *line)
{
	if (m->job_bev == NULL)
		return;
	bufferevent_write(m->job_bev, line, strlen(line));
	bufferevent_write(m->job_bev, "\n", 1);
}

/* The order process has exited (agent_child.c reaped it). */
static void
agent_acme_job_reaped(pid_t pid, int st, void *arg)
{
	struct agent_acme	*m = arg;

	if (pid != m->job_pid)
		return;
	m->job_reaped = 1;
	m->job_status = st;
	agent_acme_job_maybe_done(m);
}

/* Jobs and hooks are bounded: nothing hangs forever. */
void
agent_acme_watchdog_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct agent_acme	*m = arg;
	time_t			 now = time(NULL);

	(void)fd;
	(void)ev;
	if (m->job_pid > 0 && !m->job_reaped &&
	    now - m->job_started > ACME_JOB_MAX_S) {
		log_warnx("acme %s: the order took over %d minutes; stopping "
		    "it", m->job->name, ACME_JOB_MAX_S / 60);
		kill(m->job_pid, SIGKILL);
	}
	agent_acme_hook_watchdog(m, now);
}
