/* SPDX-License-Identifier: ISC */
/*
 * provider: exec, for DNS services with their own API (see below).
 */
#include <sys/wait.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "agent.h"
#include "agent_dns_priv.h"
#include "log.h"

/*
 * provider: exec.  The command (sh -c) gets one record set as JSON on
 * its stdin: {"zone", "name", "type", "ttl", "records": what must be
 * there, "delete": what must not (addresses of gateways the cluster
 * gave up)}; anything else at the name is not ours and must stay.  Exit
 * 0 is success; otherwise the first line it wrote is logged.  It gets
 * AGENT_DNS_EXEC_MAX_S, then SIGKILL.
 */
#define AGENT_DNS_EXEC_MAX_S	30
#define AGENT_DNS_EXEC_SAID	512

struct agent_dns_exec {
	struct agent_dns_set	*s;
	pid_t			 pid;
	int			 out;		/* its stdout and stderr */
	struct event		*read_ev;
	struct event		*timer;
	char			 said[AGENT_DNS_EXEC_SAID];
	size_t			 nsaid;
	int			 killed;
};

void
agent_dns_exec_free(struct agent_dns_exec *x)
{
	if (x == NULL)
		return;
	if (x->pid > 0) {
		/* The agent goes, or a reload: the command does not. */
		agent_child_forget(x->s->d->a, x->pid);
	}
	if (x->read_ev != NULL)
		event_free(x->read_ev);
	if (x->timer != NULL)
		event_free(x->timer);
	if (x->out != -1)
		close(x->out);
	free(x);
}

static void
agent_dns_exec_read(evutil_socket_t fd, short what, void *arg)
{
	struct agent_dns_exec	*x = arg;
	char			 buf[1024];
	ssize_t			 n;
	size_t			 keep;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		keep = (size_t)n;
		if (keep > sizeof(x->said) - 1 - x->nsaid)
			keep = sizeof(x->said) - 1 - x->nsaid;
		memcpy(x->said + x->nsaid, buf, keep);
		x->nsaid += keep;
	}
	if (n == 0) {			/* EOF: the exit status says the rest */
		event_del(x->read_ev);
		close(x->out);
		x->out = -1;
	}
}

static void
agent_dns_exec_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct agent_dns_exec	*x = arg;

	(void)fd;
	(void)what;
	x->killed = 1;
	kill(x->pid, SIGKILL);
}

static void
agent_dns_exec_done(pid_t pid, int st, void *arg)
{
	struct agent_dns_exec	*x = arg;
	struct agent_dns_set	*s = x->s;
	struct ddns_result	 res;
	char			 line[AGENT_DNS_EXEC_SAID], *nl;

	(void)pid;
	x->pid = 0;
	if (x->out != -1)		/* what it wrote before it ended */
		agent_dns_exec_read(x->out, EV_READ, x);
	x->said[x->nsaid] = '\0';
	if ((nl = strchr(x->said, '\n')) != NULL)
		*nl = '\0';		/* the first line */
	log_escape(line, sizeof(line), x->said, strlen(x->said));
	memset(&res, 0, sizeof(res));
	res.rcode = -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		res.status = DDNS_OK;
		snprintf(res.text, sizeof(res.text), "the command took it");
	} else {
		res.status = DDNS_REFUSED;
		if (x->killed)
			snprintf(res.text, sizeof(res.text), "the command "
			    "did not finish in %d s", AGENT_DNS_EXEC_MAX_S);
		else if (WIFEXITED(st))
			snprintf(res.text, sizeof(res.text), "the command "
			    "failed (exit %d)%s%.300s", WEXITSTATUS(st),
			    line[0] ? ": " : "", line);
		else
			snprintf(res.text, sizeof(res.text), "the command "
			    "was killed by signal %d", WTERMSIG(st));
	}
	s->exec = NULL;
	agent_dns_exec_free(x);
	agent_dns_synced(&res, res.status == DDNS_OK ? s->nwant + s->ndead :
	    0, NULL, s);
}

static char *
agent_dns_exec_json(struct agent_dns *d, struct agent_dns_set *s)
{
	const struct cfg_dns	*c = d->a->cfg->dns;
	json_t			*o;
	char			*text;

	o = json_pack("{s:s, s:s, s:s, s:I, s:o, s:o}", "zone", c->zone,
	    "name", s->name, "type", s->type == DDNS_A ? "A" : "AAAA",
	    "ttl", (json_int_t)(c->ttl_ms / 1000),
	    "records", agent_dns_array(s->want, s->nwant),
	    "delete", agent_dns_array(s->dead, s->ndead));
	if (o == NULL)
		return NULL;
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

void
agent_dns_exec_start(struct agent_dns *d, struct agent_dns_set *s)
{
	struct agent_dns_exec	*x;
	struct timeval		 tv = { AGENT_DNS_EXEC_MAX_S, 0 };
	struct ddns_result	 res;
	char			*json;
	int			 in[2] = { -1, -1 }, out[2] = { -1, -1 };
	size_t			 len;
	pid_t			 pid;

	memset(&res, 0, sizeof(res));
	res.status = DDNS_NETWORK;
	res.rcode = -1;
	snprintf(res.text, sizeof(res.text), "cannot run the command: out "
	    "of memory or descriptors");
	if ((x = calloc(1, sizeof(*x))) == NULL)
		goto fail;
	x->s = s;
	x->out = -1;
	if ((json = agent_dns_exec_json(d, s)) == NULL)
		goto fail;
	len = strlen(json);
	/* The set is small (at most 96 addresses): it fits a pipe. */
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    write(in[1], json, len) != (ssize_t)len || write(in[1], "\n",
	    1) != 1) {
		free(json);
		goto fail;
	}
	free(json);
	close(in[1]);
	in[1] = -1;
	if ((pid = fork()) == -1)
		goto fail;
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		closefrom(3);
		execl("/bin/sh", "sh", "-c", d->a->cfg->dns->command,
		    (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	x->pid = pid;
	x->out = out[0];
	evutil_make_socket_nonblocking(x->out);
	if ((x->read_ev = event_new(d->a->base, x->out, EV_READ | EV_PERSIST,
	    agent_dns_exec_read, x)) == NULL ||
	    (x->timer = evtimer_new(d->a->base, agent_dns_exec_timeout,
	    x)) == NULL ||
	    agent_child_watch(d->a, pid, agent_dns_exec_done, x) == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		x->pid = 0;
		in[0] = out[0] = out[1] = -1;
		goto fail;
	}
	event_add(x->read_ev, NULL);
	evtimer_add(x->timer, &tv);
	s->exec = x;
	return;
fail:
	if (x != NULL && x->out == -1 && out[0] != -1)
		close(out[0]);
	agent_dns_exec_free(x);
	if (in[0] != -1)
		close(in[0]);
	if (in[1] != -1)
		close(in[1]);
	if (out[1] != -1)
		close(out[1]);
	agent_dns_synced(&res, 0, NULL, s);
}
