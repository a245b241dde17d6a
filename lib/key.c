/* SPDX-License-Identifier: ISC */
/*
 * Identity key files.  The file holds the 32-byte Ed25519 seed in base64
 * under a comment line; the public key is derived on load.  Secrets stay
 * in this file's buffers and are wiped after use; nothing here logs.
 */

#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "key.h"

#define KEY_PREFIX	"ed25519:"
#define KEY_FILE_HDR	"# porch identity key (Ed25519 seed). Keep this file secret.\n"

int
key_generate(const char *path, struct key_pair *kp, char *err, size_t errlen)
{
	uint8_t	 seed[crypto_sign_SEEDBYTES];
	char	 b64[sodium_base64_ENCODED_LEN(sizeof(seed),
		    sodium_base64_VARIANT_ORIGINAL)];
	char	 line[sizeof(KEY_FILE_HDR) + sizeof(b64) + 2];
	int	 fd, n;
	ssize_t	 w;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	randombytes_buf(seed, sizeof(seed));
	crypto_sign_seed_keypair(kp->pub, kp->sec, seed);
	sodium_bin2base64(b64, sizeof(b64), seed, sizeof(seed),
	    sodium_base64_VARIANT_ORIGINAL);
	n = snprintf(line, sizeof(line), "%s%s\n", KEY_FILE_HDR, b64);
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(b64, sizeof(b64));

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s%s", path, strerror(errno),
		    errno == EEXIST ? " (refusing to overwrite a key)" : "");
		sodium_memzero(line, sizeof(line));
		return -1;
	}
	w = write(fd, line, n);
	sodium_memzero(line, sizeof(line));
	if (w != n || fsync(fd) == -1) {
		snprintf(err, errlen, "%s: write failed: %s", path,
		    strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

int
key_load(const char *path, struct key_pair *kp, char *err, size_t errlen)
{
	char		 buf[512], *p, *nl;
	uint8_t		 seed[crypto_sign_SEEDBYTES];
	size_t		 seedlen;
	struct stat	 st;
	ssize_t		 r;
	int		 fd, rc = -1;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s (create one with "
		    "'porchctl keygen %s')", path, strerror(errno), path);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s: key file is accessible by others "
		    "(mode %03o); run 'chmod 600 %s'", path,
		    (unsigned)(st.st_mode & 0777), path);
		goto out;
	}
	r = read(fd, buf, sizeof(buf) - 1);
	if (r <= 0) {
		snprintf(err, errlen, "%s: empty or unreadable key file", path);
		goto out;
	}
	buf[r] = '\0';
	/* Skip comment lines; the first other line is the seed. */
	p = buf;
	while (*p == '#') {
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		p = nl + 1;
	}
	if ((nl = strchr(p, '\n')) != NULL)
		*nl = '\0';
	if (sodium_base642bin(seed, sizeof(seed), p, strlen(p), NULL,
	    &seedlen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    seedlen != sizeof(seed)) {
		snprintf(err, errlen, "%s: not a porch key file (expected a "
		    "base64 Ed25519 seed; generate one with 'porchctl keygen')",
		    path);
		goto out;
	}
	crypto_sign_seed_keypair(kp->pub, kp->sec, seed);
	rc = 0;
out:
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

char *
key_pub_text(const uint8_t pub[KEY_PUB_LEN], char *buf)
{
	memcpy(buf, KEY_PREFIX, sizeof(KEY_PREFIX) - 1);
	sodium_bin2base64(buf + sizeof(KEY_PREFIX) - 1,
	    KEY_TEXT_LEN - (sizeof(KEY_PREFIX) - 1), pub, KEY_PUB_LEN,
	    sodium_base64_VARIANT_ORIGINAL);
	return buf;
}

int
key_pub_parse(const char *text, uint8_t pub[KEY_PUB_LEN])
{
	size_t	len;
	const char *b64;

	if (strncmp(text, KEY_PREFIX, sizeof(KEY_PREFIX) - 1) != 0)
		return -1;
	b64 = text + sizeof(KEY_PREFIX) - 1;
	if (strlen(b64) != 44)
		return -1;
	if (sodium_base642bin(pub, KEY_PUB_LEN, b64, 44, NULL, &len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || len != KEY_PUB_LEN)
		return -1;
	return 0;
}

void
key_clear(struct key_pair *kp)
{
	sodium_memzero(kp, sizeof(*kp));
}
