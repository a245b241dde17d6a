/* SPDX-License-Identifier: ISC */
/*
 * The renew hook: after a new certificate is saved, the configured
 * command runs (sh -c) with PORCH_CERT_NAME, PORCH_CERT_NAMES and
 * PORCH_CERT_DIR set, typically to reload whatever serves it.  Hooks run
 * beside the event loop, are reaped through agent_child.c and killed
 * past a time limit by the job's watchdog.
 */

#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acme_store.h"
#include "agent.h"
#include "agent_acme_priv.h"
#include "log.h"

#define ACME_HOOK_MAX_S		120

/* A hook command still running. */
struct agent_acme_hook {
	TAILQ_ENTRY(agent_acme_hook) entry;
	pid_t			 pid;
	char			 name[NAME_MAX_LEN + 1];
	time_t			 started;
};

/* Run the configured command; it learns which certificate changed. */
void
agent_acme_hook_run(struct agent_acme *m, const struct agent_cert *c)
{
	const struct cfg_acme	*cf = m->a->cfg->acme;
	struct agent_acme_hook	*h;
	char			 dir[1024], names[2048];
	size_t			 i, n = 0;
	pid_t			 pid;

	if (cf->renew_hook == NULL)
		return;
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		log_warnx("acme %s: renew_hook not run: out of memory",
		    c->name);
		return;
	}
	acme_store_cert_dir(cf->state_dir, c->name, dir, sizeof(dir));
	names[0] = '\0';
	for (i = 0; i < c->nnames && n < sizeof(names); i++)
		n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s",
		    i ? " " : "", c->names[i]);
	if ((pid = fork()) == -1) {
		log_warn("acme %s: renew_hook: fork", c->name);
		free(h);
		return;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		setenv("PORCH_CERT_NAME", c->name, 1);
		setenv("PORCH_CERT_NAMES", names, 1);
		setenv("PORCH_CERT_DIR", dir, 1);
		/* A hook that starts a daemon must not keep our sockets. */
		closefrom(3);
		execl("/bin/sh", "sh", "-c", cf->renew_hook, (char *)NULL);
		_exit(127);
	}
	if (agent_child_watch(m->a, pid, agent_acme_hook_reaped, m) == -1)
		log_warnx("acme %s: renew_hook runs unwatched: out of memory",
		    c->name);
	h->pid = pid;
	h->started = time(NULL);
	snprintf(h->name, sizeof(h->name), "%s", c->name);
	TAILQ_INSERT_TAIL(&m->hooks, h, entry);
	log_info("acme %s: running renew_hook (pid %ld)", c->name, (long)pid);
}

void
agent_acme_hook_reaped(pid_t pid, int st, void *arg)
{
	struct agent_acme	*m = arg;
	struct agent_acme_hook	*h;

	TAILQ_FOREACH(h, &m->hooks, entry)
		if (h->pid == pid)
			break;
	if (h == NULL)
		return;
	TAILQ_REMOVE(&m->hooks, h, entry);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		log_info("acme %s: renew_hook done", h->name);
	else if (WIFEXITED(st))
		log_warnx("acme %s: renew_hook exited with status %d; the new "
		    "certificate is saved, but whatever the hook reloads may "
		    "still use the old one", h->name, WEXITSTATUS(st));
	else
		log_warnx("acme %s: renew_hook killed by signal %d", h->name,
		    WTERMSIG(st));
	free(h);
}

void
agent_acme_hook_watchdog(struct agent_acme *m, time_t now)
{
	struct agent_acme_hook	*h;

	TAILQ_FOREACH(h, &m->hooks, entry)
		if (now - h->started > ACME_HOOK_MAX_S) {
			log_warnx("acme %s: renew_hook still running after "
			    "%d s; killing it", h->name, ACME_HOOK_MAX_S);
			kill(h->pid, SIGKILL);
			h->started = now;	/* once */
		}
}

void
agent_acme_hook_clear(struct agent_acme *m)
{
	struct agent_acme_hook	*h;

	while ((h = TAILQ_FIRST(&m->hooks)) != NULL) {
		TAILQ_REMOVE(&m->hooks, h, entry);
		agent_child_forget(m->a, h->pid);
		free(h);	/* hooks outlive us: they reload backends */
	}
}
