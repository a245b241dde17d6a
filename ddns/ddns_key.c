/* SPDX-License-Identifier: ISC */
/*
 * ddns_key.c: TSIG key files in the format BIND's tsig-keygen writes,
 *
 *	key "porch-key" {
 *		algorithm hmac-sha256;
 *		secret "BASE64";
 *	};
 *
 * so that the file a DNS admin already made for nsupdate works as is.
 * The reader is a small tokenizer over a bounded buffer: the file may
 * come from anywhere, and a mistake must be named with its line.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "ddns.h"

#define DDNS_KEY_FILE_MAX	4096
#define DDNS_KEY_HINT \
	"; the file should hold one key as tsig-keygen writes it: " \
	"key \"NAME\" { algorithm hmac-sha256; secret \"BASE64\"; };"

/* The base64 alphabet: libsodium's decoder alone let other bytes by. */
#define DDNS_B64 \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

struct ddns_tok {
	const char	*p, *end;
	int		 line;
	char		 word[DDNS_NAME_MAX];	/* the token just read */
	int		 quoted;
};

/* Skip blanks and the three kinds of comment named.conf allows. */
static int
ddns_tok_skip(struct ddns_tok *t)
{
	while (t->p < t->end) {
		if (*t->p == '\n') {
			t->line++;
			t->p++;
		} else if (*t->p == ' ' || *t->p == '\t' || *t->p == '\r')
			t->p++;
		else if (*t->p == '#' || (*t->p == '/' && t->p + 1 < t->end &&
		    t->p[1] == '/')) {
			while (t->p < t->end && *t->p != '\n')
				t->p++;
		} else if (*t->p == '/' && t->p + 1 < t->end && t->p[1] == '*') {
			t->p += 2;
			for (;;) {
				if (t->p + 1 >= t->end)
					return -1;	/* unterminated */
				if (*t->p == '*' && t->p[1] == '/')
					break;
				if (*t->p == '\n')
					t->line++;
				t->p++;
			}
			t->p += 2;
		} else
			break;
	}
	return 0;
}

/*
 * Read one token into t->word: a quoted string, one of { } ;, or a
 * word.  Returns 1, 0 at the end, -1 on a token too long or broken.
 */
static int
ddns_tok_next(struct ddns_tok *t)
{
	size_t	n = 0;

	t->quoted = 0;
	if (ddns_tok_skip(t) == -1)
		return -1;
	if (t->p == t->end)
		return 0;
	if (*t->p == '{' || *t->p == '}' || *t->p == ';') {
		t->word[0] = *t->p++;
		t->word[1] = '\0';
		return 1;
	}
	if (*t->p == '"') {
		t->quoted = 1;
		for (t->p++; t->p < t->end && *t->p != '"'; t->p++) {
			if (*t->p == '\n' || *t->p == '\0' ||
			    n + 1 >= sizeof(t->word))
				return -1;
			t->word[n++] = *t->p;
		}
		if (t->p == t->end)
			return -1;
		t->p++;
		t->word[n] = '\0';
		return 1;
	}
	while (t->p < t->end && strchr(" \t\r\n{};\"#", *t->p) == NULL) {
		if (*t->p == '\0' || n + 1 >= sizeof(t->word))
			return -1;
		t->word[n++] = *t->p++;
	}
	t->word[n] = '\0';
	return 1;
}

/* Read a token that must be exactly want. */
static int
ddns_tok_want(struct ddns_tok *t, const char *want, char *err,
    size_t errlen)
{
	int	r = ddns_tok_next(t);

	if (r == 1 && !t->quoted && strcmp(t->word, want) == 0)
		return 0;
	snprintf(err, errlen, "line %d: expected '%s'%s", t->line, want,
	    r == 0 ? " before the end" : "");
	return -1;
}

/* A key's name is a domain name: what tsig-keygen accepts. */
static int
ddns_key_name_ok(const char *w)
{
	size_t	label = 0, n = strlen(w);

	if (n == 0 || n > 253 || w[0] == '.')
		return 0;
	for (; *w != '\0'; w++) {
		if (*w == '.') {
			if (label == 0)
				return 0;	/* empty label */
			label = 0;
		} else if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
		    "OPQRSTUVWXYZ0123456789-_", *w) == NULL || ++label > 63)
			return 0;
	}
	return 1;
}

/* What RFC 8945 recommends and ldns can sign with (not SHA-384). */
static const char *
ddns_key_alg(const char *word)
{
	static const char *const ok[] = {
		"hmac-sha256", "hmac-sha512",
	};
	size_t	i, n = strlen(word);

	if (n > 0 && word[n - 1] == '.')
		n--;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strlen(ok[i]) == n && strncasecmp(word, ok[i], n) == 0)
			return ok[i];
	return NULL;
}

int
ddns_key_parse(const char *text, size_t len, struct ddns_key *k,
    char *err, size_t errlen)
{
	struct ddns_tok	 t = { text, text + len, 1, "", 0 };
	uint8_t		 bin[96];
	size_t		 binlen;
	const char	*alg;
	char		 why[256];
	int		 r, nkeys = 0;

	memset(k, 0, sizeof(*k));
	why[0] = '\0';
	while ((r = ddns_tok_next(&t)) == 1) {
		if (t.quoted || strcmp(t.word, "key") != 0) {
			snprintf(why, sizeof(why), "line %d: expected 'key', "
			    "found '%.40s'", t.line, t.word);
			goto fail;
		}
		if (++nkeys > 1) {
			snprintf(why, sizeof(why), "line %d: a second key; "
			    "give porch a file with only its own key", t.line);
			goto fail;
		}
		if (ddns_tok_next(&t) != 1 || strchr("{};", t.word[0]) ||
		    t.word[0] == '\0') {
			snprintf(why, sizeof(why), "line %d: expected the key's "
			    "name after 'key'", t.line);
			goto fail;
		}
		if (!ddns_key_name_ok(t.word)) {
			snprintf(why, sizeof(why), "line %d: the key's name "
			    "must be a domain name (letters, digits, '-', '_', "
			    "dots; labels of 1-63)", t.line);
			goto fail;
		}
		snprintf(k->name, sizeof(k->name), "%.253s%s", t.word,
		    t.word[strlen(t.word) - 1] == '.' ? "" : ".");
		if (ddns_tok_want(&t, "{", why, sizeof(why)) == -1)
			goto fail;
		for (;;) {
			if ((r = ddns_tok_next(&t)) == -1)
				break;
			if (r == 0) {
				snprintf(why, sizeof(why), "line %d: the key's "
				    "'{' is never closed", t.line);
				goto fail;
			}
			if (!t.quoted && strcmp(t.word, "}") == 0)
				break;
			if (!t.quoted && strcmp(t.word, "algorithm") == 0) {
				if (ddns_tok_next(&t) != 1 ||
				    (alg = ddns_key_alg(t.word)) == NULL) {
					snprintf(why, sizeof(why), "line %d: "
					    "algorithm '%.40s' is not "
					    "hmac-sha256 or hmac-sha512 (make a "
					    "new key with tsig-keygen -a "
					    "hmac-sha256)",
					    t.line, t.word);
					goto fail;
				}
				snprintf(k->alg, sizeof(k->alg), "%s.", alg);
			} else if (!t.quoted && strcmp(t.word, "secret") == 0) {
				if (ddns_tok_next(&t) != 1 || !t.quoted ||
				    strlen(t.word) >= sizeof(k->secret) ||
				    strspn(t.word, DDNS_B64) != strlen(t.word) ||
				    sodium_base642bin(bin, sizeof(bin), t.word,
				    strlen(t.word), NULL, &binlen, NULL,
				    sodium_base64_VARIANT_ORIGINAL) != 0 ||
				    binlen < 16) {
					snprintf(why, sizeof(why), "line %d: "
					    "the secret must be a quoted base64 "
					    "string of at least 16 bytes",
					    t.line);
					goto fail;
				}
				memcpy(k->secret, t.word, strlen(t.word) + 1);
			} else {
				snprintf(why, sizeof(why), "line %d: unknown "
				    "statement '%.40s' in the key (allowed: "
				    "algorithm, secret)", t.line, t.word);
				goto fail;
			}
			if (ddns_tok_want(&t, ";", why, sizeof(why)) == -1)
				goto fail;
		}
		if (r == -1)
			break;
		if (ddns_tok_want(&t, ";", why, sizeof(why)) == -1)
			goto fail;
	}
	if (r == -1) {
		snprintf(why, sizeof(why), "line %d: unterminated string or "
		    "comment, or a word over %d characters", t.line,
		    DDNS_NAME_MAX - 1);
		goto fail;
	}
	if (nkeys == 0)
		snprintf(why, sizeof(why), "no key in the file");
	else if (k->alg[0] == '\0')
		snprintf(why, sizeof(why), "the key has no algorithm");
	else if (k->secret[0] == '\0')
		snprintf(why, sizeof(why), "the key has no secret");
	else {
		sodium_memzero(bin, sizeof(bin));
		return 0;
	}
fail:
	sodium_memzero(bin, sizeof(bin));
	ddns_key_clear(k);
	snprintf(err, errlen, "%s%s", why, DDNS_KEY_HINT);
	return -1;
}

int
ddns_key_load(const char *path, struct ddns_key *k, char *err,
    size_t errlen)
{
	char		 buf[DDNS_KEY_FILE_MAX], why[400];
	struct stat	 st;
	ssize_t		 r;
	size_t		 len = 0;
	int		 fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s: TSIG key file is accessible by "
		    "others (mode %03o); run 'chmod 600 %s'", path,
		    (unsigned)(st.st_mode & 0777), path);
		goto out;
	}
	while ((r = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)r;
	if (r == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (len == sizeof(buf)) {
		snprintf(err, errlen, "%s: over %d bytes: not a key file",
		    path, DDNS_KEY_FILE_MAX - 1);
		goto out;
	}
	if (ddns_key_parse(buf, len, k, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

void
ddns_key_clear(struct ddns_key *k)
{
	sodium_memzero(k, sizeof(*k));
}
