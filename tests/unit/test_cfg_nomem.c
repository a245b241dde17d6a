/* SPDX-License-Identifier: ISC */
/*
 * The config loader out of memory, as on a SIGHUP reload: every
 * allocation it makes is failed in turn (the link wraps malloc, calloc,
 * realloc, strdup and strndup of config/ and lib/ with a counter), and
 * each load must fail with "out of memory" instead of exiting, while the
 * running config stays as it was.  Under ASan the failure paths are also
 * checked for leaks.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"

#define GWK	"ed25519:tWhVhZvvo86LUJoFfVOsxp+Z2c5nvGx1JEd82uZC3ug="
#define AGK	"ed25519:EL2mT+HpuRZi3nKWDPsjTJz7FgCOI8JY8BXQX/rEdNM="
#define ZEROK	"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* Every kind of section and list, so that every allocation site runs. */
static const char gw_text[] =
	"identity: gw.key\n"
	"name: gw1.example.net\n"
	"admin: 127.0.0.1:9900\n"
	"listen:\n"
	"  tls: [\"127.0.0.1:8443\", \"[::1]:8443\"]\n"
	"  http: 127.0.0.1:8080\n"
	"  tunnel: 127.0.0.1:7443\n"
	"timeouts: {hello: 2s, keepalive: 500ms, dead_peer: 3s}\n"
	"limits: {hello_bytes: 8KiB, retries: 3, names_per_peer: 10}\n"
	"agents:\n"
	"  - name: home1\n"
	"    key: \"" AGK "\"\n"
	"    hostnames: [app.example.net, \"*.home.example.net\"]\n"
	"    min_priority: 10\n"
	"    acme: false\n"
	"  - name: home2\n"
	"    key: \"" ZEROK "\"\n"
	"    hostnames: other.example.net\n"
	"peers:\n"
	"  - name: gw2\n"
	"    address: gw2.example.net:7443\n"
	"    key: \"" GWK "\"\n"
	"    hostnames: [app.example.net]\n"
	"  - name: gw3\n"
	"    address: 192.0.2.3:7443\n"
	"    key: \"ed25519:BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n";

static const char agent_text[] =
	"identity: agent.key\n"
	"name: home1\n"
	"admin: 127.0.0.1:9901\n"
	"gateways:\n"
	"  - name: gw1\n"
	"    address: gw1.example.net:7443\n"
	"    key: \"" GWK "\"\n"
	"  - name: gw2\n"
	"    address: 192.0.2.2:7443\n"
	"    key: \"" ZEROK "\"\n"
	"    server_name: gw2.example.net\n"
	"reconnect: {min: 1s, max: 1m}\n"
	"timeouts: {keepalive: 2s, dead_peer: 8s, connect: 3s, drain: 0s}\n"
	"limits: {stream_window: 256KiB, max_streams: 100}\n"
	"acme:\n"
	"  directory: letsencrypt-staging\n"
	"  agree_tos: true\n"
	"  email: admin@example.net\n"
	"  ca_bundle: ca.pem\n"
	"  state_dir: state\n"
	"  renew_hook: systemctl reload nginx\n"
	"  eab: {kid: kid1, hmac_key: abc_-}\n"
	"  challenge: [tls-alpn-01, http-01]\n"
	"  key_type: ec-p384\n"
	"  retry: {min: 10s, max: 1h}\n"
	"services:\n"
	"  - hostname: app.example.net\n"
	"    tls: 127.0.0.1:9443\n"
	"    http: 127.0.0.1:8080\n"
	"    proxy_protocol: v2\n"
	"    priority: 10\n"
	"    policy: balance\n"
	"    health: {check: http, path: /healthz, expect: 204}\n"
	"  - hostname: www.example.net\n"
	"    tls: terminate\n"
	"    http: 127.0.0.1:8080\n"
	"    h2c: 127.0.0.1:8081\n"
	"    certificate_names: [example.net]\n"
	"    health: {check: tcp, interval: 5s, timeout: 2s}\n"
	"  - hostname: \"*.home.example.net\"\n"
	"    http: localhost:80\n";

/* Which allocation fails, counting from 0; -1: none. */
static long	fail_at = -1;
static long	nalloc;

void	*__real_malloc(size_t);
void	*__real_calloc(size_t, size_t);
void	*__real_realloc(void *, size_t);
char	*__real_strdup(const char *);
char	*__real_strndup(const char *, size_t);
void	*__wrap_malloc(size_t);
void	*__wrap_calloc(size_t, size_t);
void	*__wrap_realloc(void *, size_t);
char	*__wrap_strdup(const char *);
char	*__wrap_strndup(const char *, size_t);

static int
fail_now(void)
{
	if (fail_at < 0 || nalloc++ != fail_at)
		return 0;
	errno = ENOMEM;
	return 1;
}

void *
__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t nmemb, size_t size)
{
	return fail_now() ? NULL : __real_calloc(nmemb, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

char *
__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
	return fail_now() ? NULL : __real_strndup(s, n);
}

static void
write_file(const char *path, const char *text)
{
	FILE	*f;

	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/*
 * What gw_reload() and agent_reload() do with the loader: the new config
 * replaces the running one only when it loaded.
 */
struct reload {
	const char		*path;
	char			 err[1024];
	struct cfg_gateway	*gw, *gw_before;
	struct cfg_agent	*a, *a_before;
};

static int
gw_reload(struct reload *r)
{
	struct cfg_gateway	*n;

	if ((n = cfg_gateway_load(r->path, r->err, sizeof(r->err))) == NULL)
		return -1;
	cfg_gateway_free(r->gw);
	r->gw = n;
	return 0;
}

static void
gw_kept(const struct reload *r)
{
	assert_ptr_equal(r->gw, r->gw_before);
	assert_int_equal(r->gw->nagents, 2);
	assert_string_equal(r->gw->agents[1].name, "home2");
	assert_int_equal(r->gw->npeers, 2);
	assert_string_equal(r->gw->peers[0].patterns[0], "app.example.net");
	assert_int_equal(r->gw->keepalive_ms, 500);
	assert_string_equal(r->gw->name, "gw1.example.net");
}

static int
agent_reload(struct reload *r)
{
	struct cfg_agent	*n;

	if ((n = cfg_agent_load(r->path, r->err, sizeof(r->err))) == NULL)
		return -1;
	cfg_agent_free(r->a);
	r->a = n;
	return 0;
}

static void
agent_kept(const struct reload *r)
{
	assert_ptr_equal(r->a, r->a_before);
	assert_int_equal(r->a->nservices, 3);
	assert_string_equal(r->a->services[1].cert_names[1], "example.net");
	assert_string_equal(r->a->services[0].health.path, "/healthz");
	assert_string_equal(r->a->acme->eab_hmac, "abc_-");
	assert_int_equal(r->a->ngateways, 2);
}

/* The allocation failure must be the reason given, with the file. */
static void
check_nomem(const char *file, const char *err, long i)
{
	char	want[512];

	snprintf(want, sizeof(want), "%s: out of memory", file);
	if (strcmp(err, want) != 0)
		fail_msg("allocation %ld failed: got \"%s\", want \"%s\"", i,
		    err, want);
}

/*
 * Reload text with allocation 0, 1, 2... failing, until one where every
 * allocation made it; each failed reload must have kept the running
 * config.  Returns how many allocations a load makes.
 */
static long
reload_each(struct reload *r, const char *name, const char *text,
    int (*reload)(struct reload *), void (*kept)(const struct reload *))
{
	char	dir[] = "/tmp/test_cfg_nomem.XXXXXX", path[256];
	long	i;
	int	rc;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_file(path, text);
	r->path = path;
	assert_int_equal(reload(r), 0);
	r->gw_before = r->gw;
	r->a_before = r->a;
	for (i = 0;; i++) {
		nalloc = 0;
		fail_at = i;
		rc = reload(r);
		fail_at = -1;
		if (nalloc <= i)	/* every allocation made it */
			break;
		assert_int_equal(rc, -1);
		check_nomem(path, r->err, i);
		kept(r);
	}
	/* Then a reload with memory to spare goes through. */
	assert_int_equal(rc, 0);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
	return i;
}

static void
test_gateway_reload_nomem(void **state)
{
	struct reload	r = { 0 };

	(void)state;
	assert_true(reload_each(&r, "gw.yaml", gw_text, gw_reload,
	    gw_kept) > 50);
	assert_ptr_not_equal(r.gw, r.gw_before);
	assert_int_equal(r.gw->ntls, 2);
	cfg_gateway_free(r.gw);
}

static void
test_agent_reload_nomem(void **state)
{
	struct reload	r = { 0 };

	(void)state;
	assert_true(reload_each(&r, "agent.yaml", agent_text, agent_reload,
	    agent_kept) > 80);
	assert_ptr_not_equal(r.a, r.a_before);
	assert_int_equal(r.a->nservices, 3);
	cfg_agent_free(r.a);
}

/* The same from memory, as the fuzzer and -t read it. */
static void
test_parse_nomem(void **state)
{
	struct cfg_gateway	*gw;
	struct cfg_agent	*a;
	char			 err[1024];
	long			 i;

	(void)state;
	for (i = 0;; i++) {
		nalloc = 0;
		fail_at = i;
		gw = cfg_gateway_parse("t.yaml", gw_text, strlen(gw_text), err,
		    sizeof(err));
		fail_at = -1;
		if (nalloc <= i)
			break;
		assert_null(gw);
		check_nomem("t.yaml", err, i);
	}
	assert_non_null(gw);
	cfg_gateway_free(gw);
	for (i = 0;; i++) {
		nalloc = 0;
		fail_at = i;
		a = cfg_agent_parse("t.yaml", agent_text, strlen(agent_text),
		    err, sizeof(err));
		fail_at = -1;
		if (nalloc <= i)
			break;
		assert_null(a);
		check_nomem("t.yaml", err, i);
	}
	assert_non_null(a);
	cfg_agent_free(a);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gateway_reload_nomem),
		cmocka_unit_test(test_agent_reload_nomem),
		cmocka_unit_test(test_parse_nomem),
	};

	return cmocka_run_group_tests_name("cfg_nomem", tests, NULL, NULL);
}
