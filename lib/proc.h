/* proc.h: process setup shared by the relaying programs. */
#ifndef PORCH_PROC_H
#define PORCH_PROC_H

#include <event2/event.h>

/* An event base for a relaying daemon (both daemons use one). */
struct event_base *proc_base_new(void);
/* Heap settings for a relaying daemon: call once at start. */
void		 proc_heap_tune(void);

#endif
