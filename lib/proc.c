/* SPDX-License-Identifier: ISC */
/*
 * Process setup for the relaying programs (both daemons, the bench and
 * test tools): how the event loop and the heap are tuned for relaying.
 * Not the tunnel protocol's business, so it lives here and not in tun.c.
 */

#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include <event2/event.h>

#include "proc.h"

struct event_base *
proc_base_new(void)
{
	struct event_config	*ec;
	struct event_base	*base;

	if ((ec = event_config_new()) == NULL)
		return NULL;
	/*
	 * Relaying toggles read and write interest on every buffer that
	 * fills or drains; the changelist folds those toggles into one
	 * epoll_ctl per descriptor per loop turn instead of one per toggle.
	 */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	return base;
}

/*
 * Relaying allocates and frees buffer chains in bursts of up to a few
 * windows.  glibc returns the top of the heap to the kernel as soon as
 * 128 KiB of it is free, so every burst faulted the same pages in again:
 * 171,000 minor faults per GiB with 8 downloads at once.  Keeping up to
 * 8 MiB free (and growing the heap 1 MiB at a time) made that 85.
 */
void
proc_heap_tune(void)
{
#if defined(M_TRIM_THRESHOLD) && defined(M_TOP_PAD)
	mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
	mallopt(M_TOP_PAD, 1024 * 1024);
#endif
}

int
proc_options(int argc, char *argv[], void (*usage)(FILE *), const char **conf,
    int *test, int *verbose)
{
	int	ch;

	while ((ch = getopt(argc, argv, "c:dhtv")) != -1) {
		switch (ch) {
		case 'c':
			*conf = optarg;
			break;
		case 'd':
			break;		/* always foreground; kept for habit */
		case 'h':
			usage(stdout);
			return 0;
		case 't':
			*test = 1;
			break;
		case 'v':
			*verbose = 1;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || *conf == NULL) {
		usage(stderr);
		return 2;
	}
	return -1;
}
