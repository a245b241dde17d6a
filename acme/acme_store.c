/* SPDX-License-Identifier: ISC */
/*
 * The ACME state directory (layout in acme_store.h).  Everything is
 * written the crash-safe way: a temporary file in the same directory,
 * fsync, rename, fsync of the directory; a certificate version becomes
 * live by renaming a fresh symlink over "current", so a backend reading
 * current/ never sees half a set.  Secret files are 0600 in 0700
 * directories; names that would leave the tree are refused.  No logging.
 */

#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "acme_store.h"

#define ACME_STORE_FILE_MAX	(1024 * 1024)
#define ACME_STORE_JSON_MAX	(64 * 1024)
#define ACME_STORE_URL_MAX	2048
#define ACME_STORE_PEM_BEGIN	"-----BEGIN CERTIFICATE-----"
#define ACME_STORE_PEM_END	"-----END CERTIFICATE-----"

static int	 acme_store_path(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static int	 acme_store_state_ok(const char *, char *, size_t);
static int	 acme_store_mkdirs(const char *, char *, size_t);
static int	 acme_store_host(const char *, char *, size_t, char *, size_t);
static int	 acme_store_name_ok(const char *, char *, size_t);
static char	*acme_store_read(const char *, size_t *, int, char *, size_t);
static int	 acme_store_tmp(const char *, const void *, size_t, int,
		    char *, size_t, char *, size_t);
static int	 acme_store_sync_dir(const char *, char *, size_t);
static int	 acme_store_split(const char *, char **, char **);
static int	 acme_store_version(const char *, char *, size_t, char *,
		    size_t);
static int	 acme_store_is_version(const char *);
static void	 acme_store_prune(const char *, const char *, const char *);
static void	 acme_store_rmversion(const char *, const char *);
static int	 acme_store_account_path(const char *, const char *, char *,
		    size_t, const char *, char *, size_t);

int
acme_store_init(const char *state, char *err, size_t errlen)
{
	char		path[PATH_MAX];
	struct stat	st;

	if (acme_store_state_ok(state, err, errlen) == -1 ||
	    acme_store_mkdirs(state, err, errlen) == -1)
		return -1;
	/*
	 * Private keys live here: not through a symbolic link (whoever
	 * controls the link decides where they go), and only in a
	 * directory of the user the agent runs as (another user could
	 * read or swap them).
	 */
	if (lstat(state, &st) == -1) {
		snprintf(err, errlen, "%s: %s", state, strerror(errno));
		return -1;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(err, errlen, "%s is a symbolic link; set "
		    "acme.state_dir to the directory itself", state);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s is owned by uid %u, not by the user "
		    "the agent runs as (uid %u); chown it to that user or "
		    "choose another acme.state_dir", state,
		    (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	/* A directory made by hand with the usual 0755 is tightened, as
	 * ssh would insist. */
	if (((st.st_mode & 077) != 0 &&
	    chmod(state, 0700) == -1)) {
		snprintf(err, errlen, "%s: %s (the state directory holds "
		    "private keys and must be private, mode 0700)", state,
		    strerror(errno));
		return -1;
	}
	acme_store_path(path, sizeof(path), "%s/accounts", state);
	if (acme_store_mkdirs(path, err, errlen) == -1)
		return -1;
	acme_store_path(path, sizeof(path), "%s/certs", state);
	return acme_store_mkdirs(path, err, errlen);
}

struct acme_key *
acme_store_account_find(const char *state, const char *directory, char **url,
    char *err, size_t errlen)
{
	struct acme_key	*k;
	char		 path[PATH_MAX], *pem, *text;
	size_t		 len;
	json_t		*doc;
	const char	*u, *d;

	*url = NULL;
	if (acme_store_account_path(state, directory, path, sizeof(path),
	    "account.key", err, errlen) == -1)
		return NULL;
	if ((pem = acme_store_read(path, &len, 1, err, errlen)) == NULL)
		return NULL;
	k = acme_key_load_pem(pem, len, err, errlen);
	sodium_memzero(pem, len);
	free(pem);
	if (k == NULL)
		return NULL;
	/* The URL is a hint: when missing or unreadable, newAccount finds
	 * the account again from the key. */
	if (acme_store_account_path(state, directory, path, sizeof(path),
	    "account.json", err, errlen) == -1 ||
	    (text = acme_store_read(path, &len, 0, err, errlen)) == NULL)
		return k;
	doc = json_loadb(text, len, 0, NULL);
	free(text);
	u = json_string_value(json_object_get(doc, "url"));
	d = json_string_value(json_object_get(doc, "directory"));
	if (u != NULL && d != NULL && strcmp(d, directory) == 0 &&
	    strncmp(u, "https://", 8) == 0 && strlen(u) <= ACME_STORE_URL_MAX)
		*url = strdup(u);
	json_decref(doc);
	return k;
}

struct acme_key *
acme_store_account(const char *state, const char *directory, char **url,
    char *err, size_t errlen)
{
	struct acme_key	*k;
	struct stat	 st;
	char		 path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX], *pem;
	size_t		 len;
	int		 rc;

	*url = NULL;
	if (acme_store_account_path(state, directory, path, sizeof(path),
	    "account.key", err, errlen) == -1)
		return NULL;
	if (lstat(path, &st) == 0 || errno != ENOENT)
		return acme_store_account_find(state, directory, url, err,
		    errlen);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	if (acme_store_mkdirs(dir, err, errlen) == -1)
		return NULL;
	if ((k = acme_key_generate()) == NULL ||
	    (pem = acme_key_pem(k)) == NULL) {
		acme_key_free(k);
		snprintf(err, errlen, "cannot generate an account key");
		return NULL;
	}
	len = strlen(pem);
	rc = acme_store_tmp(path, pem, len, 0600, tmp, sizeof(tmp), err,
	    errlen);
	sodium_memzero(pem, len);
	free(pem);
	if (rc == -1) {
		acme_key_free(k);
		return NULL;
	}
	/* link, not rename: if another process made a key meanwhile, its
	 * key wins and is the one used. */
	rc = link(tmp, path);
	if (rc == -1 && errno != EEXIST)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	unlink(tmp);
	if (rc == -1) {
		acme_key_free(k);
		if (errno != EEXIST)
			return NULL;
		return acme_store_account_find(state, directory, url, err,
		    errlen);
	}
	if (acme_store_sync_dir(dir, err, errlen) == -1) {
		acme_key_free(k);
		return NULL;
	}
	return k;
}

int
acme_store_account_url(const char *state, const char *directory,
    const char *url, char *err, size_t errlen)
{
	char	 path[PATH_MAX], *text;
	json_t	*doc;
	int	 rc;

	if (acme_store_account_path(state, directory, path, sizeof(path),
	    "account.json", err, errlen) == -1)
		return -1;
	if ((doc = json_pack("{s:s, s:s}", "url", url, "directory",
	    directory)) == NULL || (text = json_dumps(doc, JSON_INDENT(2) |
	    JSON_SORT_KEYS)) == NULL) {
		json_decref(doc);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_decref(doc);
	rc = acme_store_write(path, text, strlen(text), 0600, err, errlen);
	free(text);
	return rc;
}

int
acme_store_cert_save(const char *state, const char *name, const char *key_pem,
    const char *chain_pem, char *err, size_t errlen)
{
	char	 dir[PATH_MAX], vdir[PATH_MAX], path[PATH_MAX], cur[PATH_MAX];
	char	 ver[64], prev[64], tmp[PATH_MAX];
	char	*leaf = NULL, *chain = NULL;
	ssize_t	 n;
	int	 rc = -1;

	if (acme_store_state_ok(state, err, errlen) == -1 ||
	    acme_store_name_ok(name, err, errlen) == -1)
		return -1;
	if (acme_store_split(chain_pem, &leaf, &chain) == -1) {
		snprintf(err, errlen, "the chain holds no PEM certificate");
		return -1;
	}
	acme_store_path(dir, sizeof(dir), "%s/certs/%s", state, name);
	/* What current points to now is the one previous version kept. */
	acme_store_path(cur, sizeof(cur), "%s/current", dir);
	if ((n = readlink(cur, prev, sizeof(prev) - 1)) > 0)
		prev[n] = '\0';
	else
		prev[0] = '\0';
	if (acme_store_mkdirs(dir, err, errlen) == -1 ||
	    acme_store_version(dir, ver, sizeof(ver), err, errlen) == -1)
		goto out;
	acme_store_path(vdir, sizeof(vdir), "%s/%s", dir, ver);
	acme_store_path(path, sizeof(path), "%s/privkey.pem", vdir);
	if (acme_store_write(path, key_pem, strlen(key_pem), 0600, err,
	    errlen) == -1)
		goto fail;
	acme_store_path(path, sizeof(path), "%s/fullchain.pem", vdir);
	if (acme_store_write(path, chain_pem, strlen(chain_pem), 0644, err,
	    errlen) == -1)
		goto fail;
	acme_store_path(path, sizeof(path), "%s/cert.pem", vdir);
	if (acme_store_write(path, leaf, strlen(leaf), 0644, err,
	    errlen) == -1)
		goto fail;
	acme_store_path(path, sizeof(path), "%s/chain.pem", vdir);
	if (acme_store_write(path, chain, strlen(chain), 0644, err,
	    errlen) == -1)
		goto fail;

	acme_store_path(tmp, sizeof(tmp), "%s/.current.%ld.%08x", dir,
	    (long)getpid(), randombytes_random());
	if (symlink(ver, tmp) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (rename(tmp, cur) == -1) {
		snprintf(err, errlen, "%s: %s", cur, strerror(errno));
		unlink(tmp);
		goto fail;
	}
	if (acme_store_sync_dir(dir, err, errlen) == -1)
		goto out;
	acme_store_prune(dir, ver, prev);
	rc = 0;
	goto out;
fail:
	/* Not made current: take the half-written version away again. */
	acme_store_rmversion(dir, ver);
out:
	free(leaf);
	free(chain);
	return rc;
}

int
acme_store_cert_load(const char *state, const char *name, char **key_pem,
    char **chain_pem, char *err, size_t errlen)
{
	char		 path[PATH_MAX];
	struct stat	 st;
	size_t		 len;

	*chain_pem = NULL;
	if (key_pem != NULL)
		*key_pem = NULL;
	if (acme_store_state_ok(state, err, errlen) == -1 ||
	    acme_store_name_ok(name, err, errlen) == -1)
		return -1;
	acme_store_path(path, sizeof(path), "%s/certs/%s/current", state, name);
	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			snprintf(err, errlen, "no certificate for %s yet",
			    name);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	acme_store_path(path, sizeof(path), "%s/certs/%s/current/fullchain.pem",
	    state, name);
	if ((*chain_pem = acme_store_read(path, &len, 0, err, errlen)) == NULL)
		return -1;
	if (key_pem == NULL)
		return 0;
	acme_store_path(path, sizeof(path), "%s/certs/%s/current/privkey.pem",
	    state, name);
	if ((*key_pem = acme_store_read(path, &len, 0, err, errlen)) == NULL) {
		free(*chain_pem);
		*chain_pem = NULL;
		return -1;
	}
	return 0;
}

const char *
acme_store_cert_dir(const char *state, const char *name, char *buf,
    size_t len)
{
	snprintf(buf, len, "%s/certs/%s/current", state, name);
	return buf;
}

int
acme_store_state_load(const char *state, const char *name,
    struct acme_store_state *st, char *err, size_t errlen)
{
	char		 path[PATH_MAX], *text;
	size_t		 len;
	json_t		*doc, *v;
	const char	*s;
	struct stat	 sb;

	memset(st, 0, sizeof(*st));
	if (acme_store_state_ok(state, err, errlen) == -1 ||
	    acme_store_name_ok(name, err, errlen) == -1)
		return -1;
	acme_store_path(path, sizeof(path), "%s/certs/%s/state.json", state,
	    name);
	if (stat(path, &sb) == -1 && errno == ENOENT)
		return 0;
	if ((text = acme_store_read(path, &len, 0, err, errlen)) == NULL)
		return -1;
	doc = len <= ACME_STORE_JSON_MAX ? json_loadb(text, len, 0, NULL) :
	    NULL;
	free(text);
	if (!json_is_object(doc)) {
		json_decref(doc);
		snprintf(err, errlen, "%s: not a JSON object", path);
		return -1;
	}
	/* Fields of the wrong type are taken as missing. */
	if (json_is_integer(v = json_object_get(doc, "last_attempt")))
		st->last_attempt = (time_t)json_integer_value(v);
	if (json_is_integer(v = json_object_get(doc, "last_success")))
		st->last_success = (time_t)json_integer_value(v);
	if (json_is_integer(v = json_object_get(doc, "next_attempt")))
		st->next_attempt = (time_t)json_integer_value(v);
	if (json_is_integer(v = json_object_get(doc, "failures")) &&
	    json_integer_value(v) >= 0 && json_integer_value(v) <= UINT_MAX)
		st->failures = (unsigned)json_integer_value(v);
	if ((s = json_string_value(json_object_get(doc, "last_error"))) !=
	    NULL)
		snprintf(st->last_error, sizeof(st->last_error), "%s", s);
	json_decref(doc);
	return 0;
}

int
acme_store_state_save(const char *state, const char *name,
    const struct acme_store_state *st, char *err, size_t errlen)
{
	char	 path[PATH_MAX], *text;
	json_t	*doc;
	int	 rc;

	if (acme_store_state_ok(state, err, errlen) == -1 ||
	    acme_store_name_ok(name, err, errlen) == -1)
		return -1;
	acme_store_path(path, sizeof(path), "%s/certs/%s", state, name);
	if (acme_store_mkdirs(path, err, errlen) == -1)
		return -1;
	acme_store_path(path, sizeof(path), "%s/certs/%s/state.json", state,
	    name);
	if ((doc = json_pack("{s:I, s:I, s:I, s:I, s:s}",
	    "last_attempt", (json_int_t)st->last_attempt,
	    "last_success", (json_int_t)st->last_success,
	    "next_attempt", (json_int_t)st->next_attempt,
	    "failures", (json_int_t)st->failures,
	    "last_error", st->last_error)) == NULL ||
	    (text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL) {
		json_decref(doc);
		snprintf(err, errlen, "out of memory (or last_error is not "
		    "UTF-8)");
		return -1;
	}
	json_decref(doc);
	rc = acme_store_write(path, text, strlen(text), 0644, err, errlen);
	free(text);
	return rc;
}

int
acme_store_write(const char *path, const void *data, size_t len, int mode,
    char *err, size_t errlen)
{
	char	tmp[PATH_MAX], dir[PATH_MAX], *slash;

	if (acme_store_tmp(path, data, len, mode, tmp, sizeof(tmp), err,
	    errlen) == -1)
		return -1;
	if (rename(tmp, path) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return acme_store_sync_dir(dir, err, errlen);
}

/* A written, fsynced temporary file next to path; its name into tmp. */
static int
acme_store_tmp(const char *path, const void *data, size_t len, int mode,
    char *tmp, size_t tmplen, char *err, size_t errlen)
{
	const char	*base, *p = data;
	ssize_t		 n;
	int		 fd, n2;

	base = strrchr(path, '/');
	n2 = base == NULL ? snprintf(tmp, tmplen, ".%s.XXXXXX", path) :
	    snprintf(tmp, tmplen, "%.*s/.%s.XXXXXX", (int)(base - path), path,
	    base + 1);
	if (n2 < 0 || (size_t)n2 >= tmplen) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	/* mkstemp makes it 0600, so a secret is never readable by others,
	 * not even for a moment. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, (mode_t)mode) == -1)
		goto fail;
	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return -1;
}

/*
 * snprintf for paths.  Entry points check the state directory's length
 * (acme_store_state_ok) and names are at most 253 bytes, so a path
 * always fits; a truncated one is still never used.
 */
static int
acme_store_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

static int
acme_store_state_ok(const char *state, char *err, size_t errlen)
{
	if (state[0] == '\0' || strlen(state) > 1024) {
		snprintf(err, errlen, "the state directory path is empty or "
		    "longer than 1024 bytes");
		return -1;
	}
	return 0;
}

/* mkdir -p with mode 0700 for what is created. */
static int
acme_store_mkdirs(const char *path, char *err, size_t errlen)
{
	char		 buf[PATH_MAX], *p;
	struct stat	 st;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	for (p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (p[-1] != '/') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, 0700) == -1 && (errno != EEXIST ||
			    stat(buf, &st) == -1 || !S_ISDIR(st.st_mode))) {
				snprintf(err, errlen, "%s: %s", buf,
				    errno == EEXIST ? "not a directory" :
				    strerror(errno));
				return -1;
			}
			*p = c;
		}
		if (*p == '\0')
			break;
	}
	return 0;
}

/*
 * The HOST directory name of a directory URL: host[:port] lower-cased,
 * ':' as '_'.  Anything but letters, digits, '.', '-' and '_' (IPv6
 * brackets, userinfo, percent escapes) is refused, as is a leading dot.
 */
static int
acme_store_host(const char *url, char *out, size_t outlen, char *err,
    size_t errlen)
{
	const char	*p;
	size_t		 i = 0;

	if (strncasecmp(url, "https://", 8) != 0)
		goto bad;
	for (p = url + 8; *p != '\0' && *p != '/' && *p != '?' && *p != '#';
	    p++) {
		if (i + 1 >= outlen)
			goto bad;
		if (*p == ':')
			out[i++] = '_';
		else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '.' || *p == '-' || *p == '_')
			out[i++] = *p;
		else if (*p >= 'A' && *p <= 'Z')
			out[i++] = (char)(*p - 'A' + 'a');
		else
			goto bad;
	}
	out[i] = '\0';
	if (i == 0 || out[0] == '.' || out[0] == '_')
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "cannot name an account directory after the CA "
	    "URL's host (use an https URL with a plain host name or IPv4 "
	    "address)");
	return -1;
}

/* A certificate NAME is one directory: a DNS name, no '/', no "..". */
static int
acme_store_name_ok(const char *name, char *err, size_t errlen)
{
	const char	*p;

	for (p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
		    *p == '_'))
			break;
	if (*p != '\0' || p == name || p - name > 253 || name[0] == '.' ||
	    strstr(name, "..") != NULL) {
		snprintf(err, errlen, "'%.64s%s' cannot name a certificate "
		    "directory (letters, digits, '.', '-', '_' only)",
		    *p != '\0' ? "(not printable)" : name,
		    p - name > 64 ? "..." : "");
		return -1;
	}
	return 0;
}

static int
acme_store_account_path(const char *state, const char *directory, char *buf,
    size_t len, const char *file, char *err, size_t errlen)
{
	char	host[256];

	if (acme_store_state_ok(state, err, errlen) == -1 ||
	    acme_store_host(directory, host, sizeof(host), err, errlen) == -1)
		return -1;
	if (snprintf(buf, len, "%s/accounts/%s/%s", state, host, file) >=
	    (int)len) {
		snprintf(err, errlen, "state directory path too long");
		return -1;
	}
	return 0;
}

/* A whole file, NUL-terminated, at most ACME_STORE_FILE_MAX; secret:
 * refused if group or others may read it. */
static char *
acme_store_read(const char *path, size_t *lenp, int secret, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC |
	    (secret ? O_NOFOLLOW : 0))) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > ACME_STORE_FILE_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most 1 MiB",
		    path);
		goto fail;
	}
	if (secret && (st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: key file is accessible by others "
		    "(mode %03o); run 'chmod 600 %s'", path,
		    (unsigned)(st.st_mode & 0777), path);
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* The size can change under us: never read past what we sized. */
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	*lenp = len;
	return buf;
fail:
	if (buf != NULL) {
		sodium_memzero(buf, (size_t)st.st_size + 1);
		free(buf);
	}
	close(fd);
	return NULL;
}

static int
acme_store_sync_dir(const char *dir, char *err, size_t errlen)
{
	int	fd;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* The first certificate of pem, and the rest (maybe empty). */
static int
acme_store_split(const char *pem, char **leaf, char **rest)
{
	const char	*b, *e, *next;

	if ((b = strstr(pem, ACME_STORE_PEM_BEGIN)) == NULL ||
	    (e = strstr(b, ACME_STORE_PEM_END)) == NULL)
		return -1;
	e += strlen(ACME_STORE_PEM_END);
	if ((*leaf = malloc(e - b + 2)) == NULL)
		return -1;
	memcpy(*leaf, b, e - b);
	(*leaf)[e - b] = '\n';
	(*leaf)[e - b + 1] = '\0';
	next = strstr(e, ACME_STORE_PEM_BEGIN);
	if ((*rest = strdup(next != NULL ? next : "")) == NULL) {
		free(*leaf);
		*leaf = NULL;
		return -1;
	}
	return 0;
}

/* Make dir/VERSION (UTC time, "-N" if taken) and its name into ver. */
static int
acme_store_version(const char *dir, char *ver, size_t len, char *err,
    size_t errlen)
{
	char		 stamp[32], path[PATH_MAX];
	struct tm	 tm;
	time_t		 now = time(NULL);
	int		 i;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (i = 0; i < 100; i++) {
		if (i == 0)
			snprintf(ver, len, "%s", stamp);
		else
			snprintf(ver, len, "%s-%d", stamp, i);
		acme_store_path(path, sizeof(path), "%s/%s", dir, ver);
		if (mkdir(path, 0700) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return -1;
}

/* "20260102T030405Z" with an optional "-N". */
static int
acme_store_is_version(const char *s)
{
	size_t	i;

	for (i = 0; i < 16; i++) {
		if (i == 8 && s[i] != 'T')
			return 0;
		if (i == 15 && s[i] != 'Z')
			return 0;
		if (i != 8 && i != 15 && (s[i] < '0' || s[i] > '9'))
			return 0;
	}
	if (s[16] == '\0')
		return 1;
	if (s[16] != '-' || s[17] == '\0')
		return 0;
	return strspn(s + 17, "0123456789") == strlen(s + 17);
}

/* Remove every version directory of dir but keep1 and keep2, and stale
 * ".current." links of crashed saves. */
static void
acme_store_prune(const char *dir, const char *keep1, const char *keep2)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[PATH_MAX];

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".current.", 9) == 0) {
			acme_store_path(path, sizeof(path), "%s/%s", dir,
			    de->d_name);
			unlink(path);
			continue;
		}
		if (acme_store_is_version(de->d_name) &&
		    strcmp(de->d_name, keep1) != 0 &&
		    strcmp(de->d_name, keep2) != 0)
			acme_store_rmversion(dir, de->d_name);
	}
	closedir(d);
}

/* Remove dir/ver and the files in it (a version has no subdirs). */
static void
acme_store_rmversion(const char *dir, const char *ver)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[PATH_MAX], file[PATH_MAX];

	acme_store_path(path, sizeof(path), "%s/%s", dir, ver);
	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			acme_store_path(file, sizeof(file), "%s/%s", path,
			    de->d_name);
			unlink(file);
		}
		closedir(d);
	}
	rmdir(path);
}
