/* SPDX-License-Identifier: ISC */
/*
 * porchctl: the operator's tool.  It makes identity keys and prints their
 * public half, which operators paste into each other's configs (the
 * gateway admits agent keys, the agent pins gateway keys), and shows a
 * gateway's status.
 */

#include <sys/stat.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "key.h"

static int	ctl_keygen(const char *);
static int	ctl_mkparent(const char *);
static int	ctl_pubkey(const char *);
static void	ctl_usage(FILE *);

static void
ctl_usage(FILE *f)
{
	fprintf(f,
	    "usage: porchctl keygen FILE   write a new Ed25519 identity to FILE\n"
	    "                              (mode 0600; a missing directory is\n"
	    "                              made 0700) and print its public key\n"
	    "       porchctl pubkey FILE   print the public key of FILE\n"
	    "       porchctl status ADDR [--json]\n"
	    "                              show a gateway's agents, routes and\n"
	    "                              replicas, or an agent's gateways and\n"
	    "                              services, from its admin address\n"
	    "                              (the 'admin:' of its config)\n"
	    "       porchctl cert status -c AGENT.yaml [--json]\n"
	    "       porchctl cert revoke -c AGENT.yaml NAME [--reason N]\n"
	    "       porchctl cert renew -c AGENT.yaml NAME [--wait[=SECONDS]]\n"
	    "                              an agent's ACME certificates: state\n"
	    "                              and revocation from its state\n"
	    "                              directory, issue/renew through the\n"
	    "                              running agent (porchctl cert help)\n"
	    "\n"
	    "The public key looks like ed25519:BASE64 and goes under\n"
	    "'agents:' in a gateway config (for an agent key) or under\n"
	    "'gateways:' in an agent config (for a gateway key).\n");
}

int
main(int argc, char *argv[])
{
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)) {
		ctl_usage(stdout);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "keygen") == 0)
		return ctl_keygen(argv[2]);
	if (argc == 3 && strcmp(argv[1], "pubkey") == 0)
		return ctl_pubkey(argv[2]);
	if ((argc == 3 || (argc == 4 && strcmp(argv[3], "--json") == 0)) &&
	    strcmp(argv[1], "status") == 0)
		return ctl_status(argv[2], argc == 4);
	if (argc >= 2 && strcmp(argv[1], "cert") == 0)
		return ctl_cert(argc - 1, argv + 1);
	ctl_usage(stderr);
	return 2;
}

static int
ctl_keygen(const char *path)
{
	struct key_pair	kp;
	char		err[512], kt[KEY_TEXT_LEN];
	char		dir[PATH_MAX];

	/* dirname() may write to its argument. */
	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		fprintf(stderr, "porchctl: %s: path too long\n", path);
		return 1;
	}
	if (ctl_mkparent(dirname(dir)) == -1)
		return 1;
	if (key_generate(path, &kp, err, sizeof(err)) == -1) {
		fprintf(stderr, "porchctl: %s\n", err);
		return 1;
	}
	printf("%s\n", key_pub_text(kp.pub, kt));
	key_clear(&kp);
	return 0;
}

/*
 * Make dir and whichever of its parents are missing, mode 0700: it will
 * hold a secret key.  Directories that exist are left as they are; the
 * operator may have reasons for their modes.
 */
static int
ctl_mkparent(const char *dir)
{
	struct stat	st;
	char		parent[PATH_MAX];

	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		fprintf(stderr, "porchctl: %s: not a directory\n", dir);
		return -1;
	}
	if (errno != ENOENT) {
		fprintf(stderr, "porchctl: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	/* dir is shorter than PATH_MAX: the caller copied it from one. */
	snprintf(parent, sizeof(parent), "%s", dir);
	if (ctl_mkparent(dirname(parent)) == -1)
		return -1;
	if (mkdir(dir, 0700) == 0) {
		fprintf(stderr, "porchctl: created directory %s (mode 0700)\n",
		    dir);
		return 0;
	}
	if (errno == EEXIST)		/* made by someone else meanwhile */
		return 0;
	fprintf(stderr, "porchctl: cannot create directory %s: %s\n", dir,
	    strerror(errno));
	return -1;
}

static int
ctl_pubkey(const char *path)
{
	struct key_pair	kp;
	char		err[512], kt[KEY_TEXT_LEN];

	if (key_load(path, &kp, err, sizeof(err)) == -1) {
		fprintf(stderr, "porchctl: %s\n", err);
		return 1;
	}
	printf("%s\n", key_pub_text(kp.pub, kt));
	key_clear(&kp);
	return 0;
}
