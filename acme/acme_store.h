/*
 * acme_store.h: the state directory of certificates and accounts.
 *
 *   STATE/                                  0700
 *     accounts/HOST/account.key             0600, the ES256 key
 *     accounts/HOST/account.json            {"url": kid, "directory": ...}
 *     certs/NAME/VERSION/privkey.pem        0600
 *     certs/NAME/VERSION/fullchain.pem      leaf + intermediates
 *     certs/NAME/VERSION/cert.pem           leaf
 *     certs/NAME/VERSION/chain.pem          intermediates
 *     certs/NAME/current -> VERSION         swapped atomically
 *     certs/NAME/state.json                 schedule and last error
 *
 * HOST is the directory URL's host (and port); NAME is the certificate's
 * first name; VERSION a UTC timestamp.  Every file is written to a
 * temporary name, fsynced and renamed, so a reader (a backend reading
 * current/fullchain.pem) sees either the old set or the new one.
 */
#ifndef PORCH_ACME_STORE_H
#define PORCH_ACME_STORE_H

#include <stddef.h>
#include <time.h>

#include "acme_jws.h"

/* Create STATE (0700) and its subdirectories if missing. */
int	 acme_store_init(const char *state, char *err, size_t errlen);

/*
 * The account key for this CA directory, created (and saved 0600) when
 * there is none; *url is the saved account URL or NULL (caller frees).
 */
struct acme_key *acme_store_account(const char *state, const char *directory,
	    char **url, char *err, size_t errlen);
/* The same, but only an existing key: NULL (err says why) if none. */
struct acme_key *acme_store_account_find(const char *state,
	    const char *directory, char **url, char *err, size_t errlen);
int	 acme_store_account_url(const char *state, const char *directory,
	    const char *url, char *err, size_t errlen);

/* Save a new version and make it current; older ones beyond the last
 * two are removed. */
int	 acme_store_cert_save(const char *state, const char *name,
	    const char *key_pem, const char *chain_pem, char *err,
	    size_t errlen);
/* The current key and chain (caller frees both; key_pem may be NULL to
 * read only the chain).  -1 if there is none (err says so) or it cannot
 * be read. */
int	 acme_store_cert_load(const char *state, const char *name,
	    char **key_pem, char **chain_pem, char *err, size_t errlen);
/* "STATE/certs/NAME/current" into buf. */
const char *acme_store_cert_dir(const char *state, const char *name,
	    char *buf, size_t len);

/* The renewal schedule and last outcome, kept across restarts. */
struct acme_store_state {
	time_t	 last_attempt;		/* 0: never */
	time_t	 last_success;
	time_t	 next_attempt;		/* 0: decide from the certificate */
	unsigned failures;		/* in a row */
	char	 last_error[1024];	/* "" after a success */
};
/* Missing file: zeroed state, 0. */
int	 acme_store_state_load(const char *state, const char *name,
	    struct acme_store_state *, char *err, size_t errlen);
int	 acme_store_state_save(const char *state, const char *name,
	    const struct acme_store_state *, char *err, size_t errlen);

/* Write data to path atomically with mode (tmp, fsync, rename). */
int	 acme_store_write(const char *path, const void *data, size_t len,
	    int mode, char *err, size_t errlen);

#endif
