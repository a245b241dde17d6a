/* proc.h: process setup shared by the relaying programs. */
#ifndef PORCH_PROC_H
#define PORCH_PROC_H

#include <stdio.h>

#include <event2/event.h>

/* An event base for a relaying daemon (both daemons use one). */
struct event_base *proc_base_new(void);
/* Heap settings for a relaying daemon: call once at start. */
void		 proc_heap_tune(void);
/*
 * The daemons' command line: -c file (required), -t (check the config),
 * -v (verbose), -d (foreground: kept for habit, they always are), -h.
 * Returns -1 to go on, else the exit status once usage is printed: 0
 * for -h on stdout, 2 for a mistake on stderr.
 */
int		 proc_options(int, char *[], void (*usage)(FILE *),
		    const char **conf, int *test, int *verbose);

#endif
