/* SPDX-License-Identifier: ISC */
/*
 * The agent's one SIGCHLD watcher.  Whoever forks (the ACME order job,
 * the renew hook, the DNS exec provider) registers the child here, and
 * its exit status comes back to that owner alone: one waitpid(-1) per
 * process, so that no module reaps another's child.
 */

#include <sys/wait.h>
#include <signal.h>
#include <stdlib.h>

#include <event2/event.h>

#include "agent.h"

struct agent_child {
	pid_t			 pid;
	agent_child_cb		 cb;
	void			*arg;
	struct agent_child	*next;
};

static void
agent_child_sigchld(evutil_socket_t sig, short ev, void *arg)
{
	struct agent		*a = arg;
	struct agent_child	**pp, *c;
	pid_t			 pid;
	int			 st;

	(void)sig;
	(void)ev;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (pp = &a->children; (c = *pp) != NULL; pp = &c->next)
			if (c->pid == pid)
				break;
		if (c == NULL)
			continue;
		*pp = c->next;
		c->cb(pid, st, c->arg);
		free(c);
	}
}

int
agent_child_init(struct agent *a)
{
	if ((a->sigchld = evsignal_new(a->base, SIGCHLD, agent_child_sigchld,
	    a)) == NULL || evsignal_add(a->sigchld, NULL) == -1)
		return -1;
	return 0;
}

void
agent_child_free(struct agent *a)
{
	struct agent_child	*c;

	while ((c = a->children) != NULL) {
		a->children = c->next;
		free(c);
	}
	if (a->sigchld != NULL)
		event_free(a->sigchld);
	a->sigchld = NULL;
}

int
agent_child_watch(struct agent *a, pid_t pid, agent_child_cb cb, void *arg)
{
	struct agent_child	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->pid = pid;
	c->cb = cb;
	c->arg = arg;
	c->next = a->children;
	a->children = c;
	return 0;
}

void
agent_child_forget(struct agent *a, pid_t pid)
{
	struct agent_child	**pp, *c;

	/* waitpid(-1) still reaps it; nobody hears of it. */
	for (pp = &a->children; (c = *pp) != NULL; pp = &c->next)
		if (c->pid == pid) {
			*pp = c->next;
			free(c);
			return;
		}
}
