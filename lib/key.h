/* key.h: Ed25519 identity key files and their public text form. */
#ifndef PORCH_KEY_H
#define PORCH_KEY_H

#include <stddef.h>
#include <stdint.h>

#define KEY_PUB_LEN	32
#define KEY_SEC_LEN	64	/* libsodium secret key: seed || public */
#define KEY_SIG_LEN	64
#define KEY_TEXT_LEN	53	/* "ed25519:" + 44 base64 + NUL */

struct key_pair {
	uint8_t	pub[KEY_PUB_LEN];
	uint8_t	sec[KEY_SEC_LEN];
};

/*
 * Generate a key pair and write it to path, created with mode 0600 and
 * refusing to overwrite.  Returns 0, or -1 with a reason in err.
 */
int	key_generate(const char *path, struct key_pair *, char *err, size_t);

/*
 * Load a key file.  Refuses files readable by group or others, as ssh
 * does, since the key is the host's whole identity.  Returns 0 or -1.
 */
int	key_load(const char *path, struct key_pair *, char *err, size_t);

/* "ed25519:BASE64" form of a public key; buf holds KEY_TEXT_LEN. */
char	*key_pub_text(const uint8_t pub[KEY_PUB_LEN], char *buf);

/* Parse the text form back.  Returns 0 or -1. */
int	key_pub_parse(const char *text, uint8_t pub[KEY_PUB_LEN]);

/* Wipe secret material. */
void	key_clear(struct key_pair *);

#endif
