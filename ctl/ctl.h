/* ctl.h: porchctl's subcommands. */
#ifndef PORCH_CTL_H
#define PORCH_CTL_H

/* Print a gateway's /status from its admin address; raw: the JSON. */
int	ctl_status(const char *addr, int raw);

#endif
