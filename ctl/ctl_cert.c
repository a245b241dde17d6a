/* SPDX-License-Identifier: ISC */
/*
 * porchctl cert: the ACME certificates of an agent, read straight from
 * its state directory (status), and revocation with the stored account.
 * Issuing and renewing go through the running agent (its admin
 * address), so that only one process ever orders for a name and the
 * challenges are answered where the gateways send the CA; the request
 * carries the admin secret the agent keeps next to its config.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "acme.h"
#include "acme_crypto.h"
#include "acme_store.h"
#include "admin.h"
#include "cfg.h"
#include "ctl.h"

#define CTL_CERT_WAIT_S		300	/* --wait: orders take seconds */
#define CTL_CERT_WAIT_MAX_S	(24 * 60 * 60)

static int	 ctl_cert_status(const struct cfg_agent *, int);
static int	 ctl_cert_revoke(const struct cfg_agent *, const char *, int);
static json_t	*ctl_cert_one(const struct cfg_acme *,
		    const struct cfg_service *, time_t);
static void	 ctl_cert_print(json_t *);
static const char *ctl_cert_str(json_t *, const char *);
static void	 ctl_cert_line(const char *, const char *);
static char	*ctl_cert_time(time_t, char *, size_t);
static void	 ctl_cert_usage(FILE *);
static int	 ctl_cert_renew(const struct cfg_agent *, const char *, long);
static json_t	*ctl_cert_agent(const char *, const char *, const char *,
		    unsigned long long *, char *, size_t);

static void
ctl_cert_usage(FILE *f)
{
	fprintf(f,
	    "usage: porchctl cert status -c AGENT.yaml [--json]\n"
	    "                              the agent's ACME certificates:\n"
	    "                              names, expiry, issuer, last\n"
	    "                              error and next attempt\n"
	    "       porchctl cert revoke -c AGENT.yaml NAME [--reason N]\n"
	    "                              revoke NAME's current certificate\n"
	    "                              with the agent's ACME account; N\n"
	    "                              is an RFC 5280 reason: 0\n"
	    "                              unspecified (default), 1\n"
	    "                              keyCompromise, 4 superseded,\n"
	    "                              5 cessationOfOperation\n"
	    "       porchctl cert issue|renew -c AGENT.yaml NAME\n"
	    "            [--wait[=SECONDS]]\n"
	    "                              ask the running agent (its\n"
	    "                              'admin:' address) to order NAME's\n"
	    "                              certificate now; --wait follows\n"
	    "                              that order for up to SECONDS\n"
	    "                              (default %d): exit 0 with the new\n"
	    "                              serial, 1 with the CA's error or\n"
	    "                              when the time is up (the order\n"
	    "                              goes on in the agent)\n",
	    CTL_CERT_WAIT_S);
}

/* argv[0] is "cert". */
int
ctl_cert(int argc, char *argv[])
{
	struct cfg_agent	*cfg;
	const char		*cmd, *file = NULL, *name = NULL;
	char			 err[1024], *end;
	long			 reason = 0, wait = 0;
	int			 i, json = 0, rc;

	if (argc < 2) {
		ctl_cert_usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "help") == 0) {
		ctl_cert_usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "issue") == 0)
		cmd = "renew";		/* the same request to the agent */
	if (strcmp(cmd, "status") != 0 && strcmp(cmd, "revoke") != 0 &&
	    strcmp(cmd, "renew") != 0) {
		ctl_cert_usage(stderr);
		return 2;
	}
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			file = argv[++i];
		else if (strcmp(argv[i], "--json") == 0 &&
		    strcmp(cmd, "status") == 0)
			json = 1;
		else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc &&
		    strcmp(cmd, "revoke") == 0) {
			reason = strtol(argv[++i], &end, 10);
			if (*argv[i] == '\0' || *end != '\0' || reason < 0 ||
			    reason > 10 || reason == 7) {
				fprintf(stderr, "porchctl: --reason %s: use an "
				    "RFC 5280 reason code, 0-6 or 8-10\n",
				    argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--wait") == 0 &&
		    strcmp(cmd, "renew") == 0)
			wait = CTL_CERT_WAIT_S;
		else if (strncmp(argv[i], "--wait=", 7) == 0 &&
		    strcmp(cmd, "renew") == 0) {
			wait = strtol(argv[i] + 7, &end, 10);
			if (argv[i][7] == '\0' || *end != '\0' || wait < 1 ||
			    wait > CTL_CERT_WAIT_MAX_S) {
				fprintf(stderr, "porchctl: %s: give the seconds "
				    "to wait, 1 to %d\n", argv[i],
				    CTL_CERT_WAIT_MAX_S);
				return 2;
			}
		}
		else if (argv[i][0] != '-' && name == NULL &&
		    strcmp(cmd, "status") != 0)
			name = argv[i];
		else {
			ctl_cert_usage(stderr);
			return 2;
		}
	}
	if (file == NULL || (strcmp(cmd, "status") != 0 && name == NULL)) {
		ctl_cert_usage(stderr);
		return 2;
	}
	if ((cfg = cfg_agent_load(file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "porchctl: %s\n", err);
		return 1;
	}
	if (cfg->acme == NULL) {
		fprintf(stderr, "porchctl: %s has no 'acme:' section, so the "
		    "agent obtains no certificates\n", file);
		cfg_agent_free(cfg);
		return 1;
	}
	if (strcmp(cmd, "status") == 0)
		rc = ctl_cert_status(cfg, json);
	else if (strcmp(cmd, "renew") == 0)
		rc = ctl_cert_renew(cfg, name, wait);
	else
		rc = ctl_cert_revoke(cfg, name, (int)reason);
	cfg_agent_free(cfg);
	return rc;
}

static int
ctl_cert_status(const struct cfg_agent *cfg, int raw)
{
	json_t	*doc, *list, *one;
	char	*text;
	size_t	 i;
	time_t	 now = time(NULL);

	if ((doc = json_object()) == NULL || (list = json_array()) == NULL ||
	    json_object_set_new(doc, "certificates", list) == -1) {
		fprintf(stderr, "porchctl: out of memory\n");
		json_decref(doc);
		return 1;
	}
	for (i = 0; i < cfg->nservices; i++) {
		if (!cfg->services[i].acme)
			continue;
		if ((one = ctl_cert_one(cfg->acme, &cfg->services[i],
		    now)) == NULL || json_array_append_new(list, one) == -1) {
			fprintf(stderr, "porchctl: out of memory\n");
			json_decref(doc);
			return 1;
		}
	}
	if (raw) {
		if ((text = json_dumps(doc, JSON_INDENT(2))) != NULL)
			printf("%s\n", text);
		free(text);
	} else if (json_array_size(list) == 0)
		printf("no service has 'certificate: acme'\n");
	else
		ctl_cert_print(list);
	json_decref(doc);
	return 0;
}

/* One service's certificate and renewal state as JSON. */
static json_t *
ctl_cert_one(const struct cfg_acme *acme, const struct cfg_service *s,
    time_t now)
{
	struct acme_cert_info	 ci;
	struct acme_store_state	 st;
	json_t			*o, *names, *c = NULL, *sj;
	const char		*name = s->cert_names[0];
	char			*chain, err[512], dir[4096], t[64];
	size_t			 i;
	long long		 left;

	if ((o = json_object()) == NULL || (names = json_array()) == NULL ||
	    json_object_set_new(o, "name", json_string(name)) == -1 ||
	    json_object_set_new(o, "names", names) == -1) {
		json_decref(o);
		return NULL;
	}
	for (i = 0; i < s->ncert_names; i++)
		json_array_append_new(names, json_string(s->cert_names[i]));
	json_object_set_new(o, "path", json_string(acme_store_cert_dir(
	    acme->state_dir, name, dir, sizeof(dir))));
	if (acme_store_cert_load(acme->state_dir, name, NULL, &chain, err,
	    sizeof(err)) == -1)
		json_object_set_new(o, "certificate_error", json_string(err));
	else {
		if (acme_cert_info(chain, &ci, err, sizeof(err)) == -1)
			json_object_set_new(o, "certificate_error",
			    json_string(err));
		else {
			left = ci.not_after >= now ?
			    (long long)(ci.not_after - now) / 86400 :
			    -(long long)((now - ci.not_after + 86399) / 86400);
			c = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:[]}",
			    "not_after", ctl_cert_time(ci.not_after, t,
			    sizeof(t)), "not_after_unix",
			    (json_int_t)ci.not_after, "days_left",
			    (json_int_t)left,
			    "issuer", ci.issuer, "serial", ci.serial,
			    "ari_id", ci.ari_id, "names");
			for (i = 0; c != NULL && i < ci.nnames; i++)
				json_array_append_new(json_object_get(c,
				    "names"), json_string(ci.names[i]));
			json_object_set_new(o, "certificate", c);
			acme_cert_info_clear(&ci);
		}
		free(chain);
	}
	if (acme_store_state_load(acme->state_dir, name, &st, err,
	    sizeof(err)) == -1)
		json_object_set_new(o, "state_error", json_string(err));
	else {
		if ((sj = json_object()) != NULL) {
			json_object_set_new(sj, "failures",
			    json_integer((json_int_t)st.failures));
			json_object_set_new(sj, "last_attempt", json_string(
			    ctl_cert_time(st.last_attempt, t, sizeof(t))));
			json_object_set_new(sj, "last_success", json_string(
			    ctl_cert_time(st.last_success, t, sizeof(t))));
			json_object_set_new(sj, "next_attempt", json_string(
			    ctl_cert_time(st.next_attempt, t, sizeof(t))));
			json_object_set_new(sj, "last_error", json_string(
			    st.last_error));
		}
		json_object_set_new(o, "state", sj);
	}
	return o;
}

static const char *
ctl_cert_str(json_t *o, const char *key)
{
	const char	*s = json_string_value(json_object_get(o, key));

	return s != NULL && *s != '\0' ? s : "-";
}

static void
ctl_cert_print(json_t *list)
{
	json_t		*o, *c, *st, *v;
	size_t		 i, j;
	long long	 left, fails;
	const char	*err;

	json_array_foreach(list, i, o) {
		printf("%s%s\n", i > 0 ? "\n" : "", ctl_cert_str(o, "name"));
		printf("  %-12s", "names");
		json_array_foreach(json_object_get(o, "names"), j, v)
			printf("%s%s", j > 0 ? ", " : "", json_string_value(v));
		printf("\n");
		if ((c = json_object_get(o, "certificate")) != NULL) {
			left = json_integer_value(json_object_get(c,
			    "days_left"));
			if (left >= 0)
				printf("  %-12s%s (%lld day%s left)\n",
				    "expires", ctl_cert_str(c, "not_after"),
				    left, left == 1 ? "" : "s");
			else
				printf("  %-12s%s (EXPIRED %lld day%s ago)\n",
				    "expired", ctl_cert_str(c, "not_after"),
				    -left, left == -1 ? "" : "s");
			ctl_cert_line("issuer", ctl_cert_str(c, "issuer"));
			ctl_cert_line("serial", ctl_cert_str(c, "serial"));
			ctl_cert_line("path", ctl_cert_str(o, "path"));
		} else {
			err = ctl_cert_str(o, "certificate_error");
			ctl_cert_line("certificate", strncmp(err,
			    "no certificate", 14) == 0 ? "no certificate yet" :
			    err);
		}
		if ((st = json_object_get(o, "state")) == NULL) {
			ctl_cert_line("state", ctl_cert_str(o, "state_error"));
			continue;
		}
		ctl_cert_line("last try", ctl_cert_str(st, "last_attempt"));
		ctl_cert_line("last ok", ctl_cert_str(st, "last_success"));
		fails = json_integer_value(json_object_get(st, "failures"));
		if (fails > 0)
			printf("  %-12s%lld in a row\n", "failures", fails);
		if (strcmp(ctl_cert_str(st, "next_attempt"), "-") != 0)
			ctl_cert_line("next try", ctl_cert_str(st,
			    "next_attempt"));
		if (strcmp(ctl_cert_str(st, "last_error"), "-") != 0)
			ctl_cert_line("last error", ctl_cert_str(st,
			    "last_error"));
	}
}

static void
ctl_cert_line(const char *label, const char *value)
{
	printf("  %-12s%s\n", label, value);
}

static int
ctl_cert_revoke(const struct cfg_agent *cfg, const char *arg, int reason)
{
	const struct cfg_acme	*m = cfg->acme;
	const struct cfg_service *s = NULL;
	struct acme_opts	 o;
	struct acme_key		*key;
	struct acme_cert_info	 ci;
	struct acme_error	 e;
	struct acme		*a;
	char			*chain, *url = NULL, err[1024], dir[4096];
	const char		*name;
	size_t			 i, j;
	int			 rc = 1;

	/* NAME may be any of a certificate's names. */
	for (i = 0; i < cfg->nservices && s == NULL; i++)
		for (j = 0; cfg->services[i].acme &&
		    j < cfg->services[i].ncert_names; j++)
			if (strcasecmp(cfg->services[i].cert_names[j],
			    arg) == 0) {
				s = &cfg->services[i];
				break;
			}
	if (s == NULL) {
		fprintf(stderr, "porchctl: %s is not the name of a service "
		    "with 'certificate: acme' in %s\n", arg, cfg->file);
		return 1;
	}
	name = s->cert_names[0];
	if (acme_store_cert_load(m->state_dir, name, NULL, &chain, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "porchctl: %s\n", err);
		return 1;
	}
	if (acme_cert_info(chain, &ci, err, sizeof(err)) == -1) {
		fprintf(stderr, "porchctl: %s/fullchain.pem: %s\n",
		    acme_store_cert_dir(m->state_dir, name, dir, sizeof(dir)),
		    err);
		free(chain);
		return 1;
	}
	if ((key = acme_store_account_find(m->state_dir, m->directory, &url,
	    err, sizeof(err))) == NULL) {
		fprintf(stderr, "porchctl: no ACME account for %s in %s (%s)\n",
		    m->directory, m->state_dir, err);
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.directory = m->directory;
	o.ca_bundle = m->ca_bundle;
	o.email = m->email;
	o.eab_kid = m->eab_kid;
	o.eab_hmac = m->eab_hmac;
	if ((a = acme_new(&o, key, url)) == NULL) {
		fprintf(stderr, "porchctl: out of memory\n");
		goto out;
	}
	if (acme_revoke(a, chain, reason, &e) == -1)
		fprintf(stderr, "porchctl: revoking the certificate of %s "
		    "(serial %s) failed: %s\n", name, ci.serial, e.msg);
	else {
		printf("revoked the certificate of %s (serial %s, reason %d)\n"
		    "the agent keeps serving it from %s until a new one is "
		    "issued\n", name, ci.serial, reason,
		    acme_store_cert_dir(m->state_dir, name, dir, sizeof(dir)));
		rc = 0;
	}
	/* newAccount may have found the URL again: keep it for next time. */
	if (url == NULL && acme_account_url(a) != NULL)
		(void)acme_store_account_url(m->state_dir, m->directory,
		    acme_account_url(a), err, sizeof(err));
	acme_free(a);
out:
	acme_cert_info_clear(&ci);
	free(chain);
	free(url);
	return rc;
}

/* "2026-01-02 03:04:05 UTC", or "" for 0. */
static char *
ctl_cert_time(time_t t, char *buf, size_t len)
{
	struct tm	tm;

	buf[0] = '\0';
	if (t != 0 && gmtime_r(&t, &tm) != NULL)
		strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf;
}

/*
 * One request to the agent's admin listener: POST path with the admin
 * secret (secret not NULL) or GET /status.  Returns the parsed status,
 * or for a POST a JSON string holding the agent's answer and in *order
 * the id of the order that answers it (0: the agent gave none); NULL
 * with err set.
 */
static json_t *
ctl_cert_agent(const char *admin, const char *path, const char *secret,
    unsigned long long *order, char *err, size_t errlen)
{
	struct ctl_answer	 a;
	json_t			*o = NULL;
	json_error_t		 je;
	char			 why[128];
	int			 post = secret != NULL;

	if (ctl_admin_request(admin, path, secret, &a, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "cannot reach the agent at %s: %s (is it "
		    "running, and is this its 'admin:' address?)", admin, why);
		return NULL;
	}
	if (post)
		*order = a.order;
	if (post && a.status == 202)
		o = json_string(a.body != NULL ? a.body : "");
	else if (post)
		snprintf(err, errlen, "the agent refused: %s",
		    a.body != NULL ? a.body : "(no reason given)");
	else if ((o = json_loads(a.body != NULL ? a.body : "", 0,
	    &je)) == NULL)
		snprintf(err, errlen, "the agent's status is not JSON: %s",
		    je.text);
	ctl_answer_free(&a);
	if (o == NULL)
		err[strcspn(err, "\n")] = '\0';
	return o;
}

/* The agent's view of one certificate, or NULL. */
static json_t *
ctl_cert_find(json_t *status, const char *name)
{
	json_t	*certs = json_object_get(status, "certificates"), *c;
	size_t	 i;

	json_array_foreach(certs, i, c)
		if (json_is_string(json_object_get(c, "name")) &&
		    strcmp(json_string_value(json_object_get(c, "name")),
		    name) == 0)
			return c;
	return NULL;
}

static double
ctl_cert_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Ask the agent to order NAME's certificate; wait > 0: follow that order
 * (by the id the agent answered with) for up to wait seconds.
 */
static int
ctl_cert_renew(const struct cfg_agent *cfg, const char *name, long wait)
{
	json_t			*o, *st, *c;
	char			 err[1024], path[512], pending[256];
	char			 spath[1024], secret[ADMIN_SECRET_HEX + 1];
	const char		*state;
	unsigned long long	 order, id;
	double			 deadline;
	int			 rc = -1;

	if (cfg->admin == NULL) {
		fprintf(stderr, "porchctl: %s has no 'admin:' address, so the "
		    "running agent cannot be asked; add 'admin: "
		    "\"127.0.0.1:9901\"' and reload it (SIGHUP)\n", cfg->file);
		return 1;
	}
	/* Only the agent's user can read it: a web page cannot. */
	admin_secret_path(cfg->file, spath, sizeof(spath));
	if (admin_secret_load(spath, 0, secret, err, sizeof(err)) == -1) {
		fprintf(stderr, "porchctl: %s (the agent makes it when it "
		    "starts with an 'admin:' address; run porchctl as the "
		    "agent's user)\n", err);
		return 1;
	}
	snprintf(path, sizeof(path), "/acme/renew?name=%s", name);
	o = ctl_cert_agent(cfg->admin->text, path, secret, &order, err,
	    sizeof(err));
	explicit_bzero(secret, sizeof(secret));
	if (o == NULL) {
		fprintf(stderr, "porchctl: %s\n", err);
		return 1;
	}
	printf("%s", json_string_value(o));
	json_decref(o);
	if (wait == 0)
		return 0;
	if (order == 0) {
		fprintf(stderr, "porchctl: the agent did not say which order "
		    "to follow (a porch-agent older than this porchctl?); see "
		    "porchctl cert status\n");
		return 1;
	}
	printf("%s: waiting up to %lds for the outcome of order %llu\n",
	    name, wait, order);
	/* Piped output too: the line is seen while we wait, not after. */
	fflush(stdout);
	deadline = ctl_cert_now() + (double)wait;
	snprintf(pending, sizeof(pending), "-");
	for (;;) {
		struct timespec ts = { 0, 250 * 1000 * 1000 };

		if ((st = ctl_cert_agent(cfg->admin->text, "/status", NULL, NULL,
		    err, sizeof(err))) == NULL) {
			fprintf(stderr, "porchctl: %s\n", err);
			return 1;
		}
		if ((c = ctl_cert_find(st, name)) == NULL) {
			fprintf(stderr, "porchctl: %s: the agent no longer has "
			    "this certificate (reloaded without it?)\n", name);
			json_decref(st);
			return 1;
		}
		id = (unsigned long long)json_integer_value(json_object_get(c,
		    "order_id"));
		state = ctl_cert_str(c, "order_state");
		/* A later order means ours ended: the certificate says how. */
		if (id > order)
			state = strcmp(ctl_cert_str(c, "last_error"), "-") == 0 ?
			    "succeeded" : "failed";
		if (id >= order && strcmp(state, "succeeded") == 0) {
			printf("%s: certificate obtained, valid until %s, "
			    "serial %s\n", name, ctl_cert_str(c, "not_after"),
			    ctl_cert_str(c, "serial"));
			rc = 0;
		} else if (id >= order && strcmp(state, "failed") == 0) {
			fprintf(stderr, "porchctl: %s: order failed: %s\n",
			    name, ctl_cert_str(c, "last_error"));
			rc = 1;
		} else if (id < order)
			snprintf(pending, sizeof(pending), "%s",
			    ctl_cert_str(c, "order_pending"));
		json_decref(st);
		if (rc != -1)
			return rc;
		if (ctl_cert_now() >= deadline)
			break;
		nanosleep(&ts, NULL);
	}
	if (id < order)
		fprintf(stderr, "porchctl: %s: order %llu has not started after "
		    "%lds (%s); the request stays with the agent, see porchctl "
		    "cert status\n", name, order,
		    wait, strcmp(pending, "-") == 0 ? "the agent gives no "
		    "reason; was it restarted?" : pending);
	else
		fprintf(stderr, "porchctl: %s: order %llu still running after "
		    "%lds; the agent goes on with it, see porchctl cert "
		    "status\n", name, order, wait);
	return 1;
}
