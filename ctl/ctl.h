/* ctl.h: porchctl's subcommands. */
#ifndef PORCH_CTL_H
#define PORCH_CTL_H

#include <stddef.h>

/* Print a gateway's /status from its admin address; raw: the JSON. */
int	ctl_status(const char *addr, int raw);
/* porchctl cert ...: argv[0] is "cert".  Returns the exit status. */
int	ctl_cert(int argc, char *argv[]);

/* An admin listener's answer. */
struct ctl_answer {
	long			 status;	/* HTTP status */
	char			*body;		/* NUL-terminated, or NULL */
	size_t			 len;
	unsigned long long	 order;		/* Porch-Order:, 0: none */
	int			 too_large;
};

/*
 * GET path from the admin listener at addr (host:port), or POST it with
 * the admin secret when secret is not NULL.  0 with *a filled, whatever
 * the HTTP status (free with ctl_answer_free); -1 with err saying why
 * there was no answer.
 */
int	ctl_admin_request(const char *addr, const char *path,
	    const char *secret, struct ctl_answer *a, char *err,
	    size_t errlen);
void	ctl_answer_free(struct ctl_answer *);

#endif
