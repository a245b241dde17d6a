/* ctl.h: porchctl's subcommands. */
#ifndef PORCH_CTL_H
#define PORCH_CTL_H

/* Print a gateway's /status from its admin address; raw: the JSON. */
int	ctl_status(const char *addr, int raw);
/* porchctl cert ...: argv[0] is "cert".  Returns the exit status. */
int	ctl_cert(int argc, char *argv[]);

#endif
